"""The keyed sampler: keys depend only on (epoch, position), and an epoch too long to key is refused."""

import pytest

from tailteacher.pipeline.data import DRAWS_PER_EPOCH, KeyedSampler, epoch_stride


def test_keys_are_epoch_and_position_times_items_plus_index():
    sampler = KeyedSampler([2, 0, 2], num_items=3)  # type: ignore[arg-type]
    sampler.set_epoch(5)
    keyed = list(sampler)
    assert [divmod(k, 3) for k in keyed] == [(5 * DRAWS_PER_EPOCH + p, i) for p, i in enumerate([2, 0, 2])]


def test_an_epoch_of_two_to_the_twenty_draws_or_more_gets_a_wider_stride():
    assert [epoch_stride(n) for n in (0, 5, DRAWS_PER_EPOCH - 1)] == [DRAWS_PER_EPOCH] * 3  # keys as before
    assert [epoch_stride(n) for n in (DRAWS_PER_EPOCH, 3_000_000)] == [
        2 * DRAWS_PER_EPOCH,
        4 * DRAWS_PER_EPOCH,
    ]
    sampler = KeyedSampler(range(DRAWS_PER_EPOCH), num_items=DRAWS_PER_EPOCH, rank=1, world_size=2)  # type: ignore[arg-type]
    sampler.set_epoch(3)
    first = next(iter(sampler))
    assert sampler.stride == 4 * DRAWS_PER_EPOCH and divmod(first, DRAWS_PER_EPOCH) == (
        3 * sampler.stride + 1,
        0,
    )


def test_a_sampler_without_length_that_runs_over_is_stopped():
    def endless():
        while True:
            yield 0

    class Unsized:
        def __iter__(self):
            return endless()

    keys = iter(KeyedSampler(Unsized(), num_items=1))  # type: ignore[arg-type]
    for _ in range(DRAWS_PER_EPOCH):
        next(keys)
    with pytest.raises(ValueError, match="more than"):
        next(keys)


@pytest.mark.parametrize("sampler", ["distributed", "repeat_factor"])
def test_two_ranks_draw_the_keys_one_process_draws_with_twice_the_batch(sampler):
    import torch
    from torch.utils.data import DistributedSampler

    from tailteacher.data.sampling import RepeatFactorSampler

    def base(rank: int, world: int):
        if sampler == "distributed":
            return DistributedSampler(range(10), num_replicas=world, rank=rank, seed=3)
        factors = torch.tensor([1.0, 2.5, 1.0, 1.2, 3.0, 1.0, 1.0, 1.7])
        return RepeatFactorSampler(factors, seed=3, rank=rank, world_size=world)

    def draws(rank: int, world: int) -> list[int]:
        keyed = KeyedSampler(base(rank, world), 10, rank, world)
        keyed.set_epoch(2)
        return list(keyed)

    one = draws(0, 1)
    ranks = [draws(0, 2), draws(1, 2)]
    # rank r's p-th draw is one process's (2p + r)-th: the same image under the same key
    merged = [ranks[p % 2][p // 2] for p in range(2 * len(ranks[1]))]
    assert merged[: len(one)] == one


def test_a_rank_outside_the_world_is_refused():
    with pytest.raises(ValueError, match="rank"):
        KeyedSampler([0], num_items=1, rank=2, world_size=2)  # type: ignore[arg-type]
