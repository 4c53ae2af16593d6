"""The keyed sampler: keys depend only on (epoch, position), and an epoch too long to key is refused."""

import pytest

from tailteacher.pipeline.data import DRAWS_PER_EPOCH, KeyedSampler


def test_keys_are_epoch_and_position_times_items_plus_index():
    sampler = KeyedSampler([2, 0, 2], num_items=3)  # type: ignore[arg-type]
    sampler.set_epoch(5)
    keyed = list(sampler)
    assert [divmod(k, 3) for k in keyed] == [(5 * DRAWS_PER_EPOCH + p, i) for p, i in enumerate([2, 0, 2])]


def test_an_epoch_of_two_to_the_twenty_draws_is_refused():
    with pytest.raises(ValueError, match="draws per epoch"):
        KeyedSampler(range(DRAWS_PER_EPOCH), num_items=DRAWS_PER_EPOCH)  # type: ignore[arg-type]


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
