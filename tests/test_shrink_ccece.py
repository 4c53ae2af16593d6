"""shrink_ccece: Eq. 4's Δ pulled toward its group's pooled Δ in proportion to its evidence (D100)."""

import pytest
import torch

from tailteacher.labels import ccece, shrink_ccece


def test_exact_values_on_two_groups():
    delta = torch.tensor([0.8, 0.0, 0.1, -0.2], dtype=torch.float64)
    count = torch.tensor([1, 9, 10, 30])
    groups = torch.tensor([0, 0, 1, 1])
    out = shrink_ccece(delta, count, groups, strength=10.0)
    # group 0 pooled: (1·0.8 + 9·0) / 10 = 0.08; group 1: (10·0.1 − 30·0.2) / 40 = −0.125
    expected = torch.tensor(
        [
            (1 * 0.8 + 10 * 0.08) / 11,
            (9 * 0.0 + 10 * 0.08) / 19,
            (10 * 0.1 - 10 * 0.125) / 20,
            (30 * -0.2 - 10 * 0.125) / 40,
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-15)


def test_zero_strength_is_eq4_and_no_samples_take_the_group():
    delta = torch.tensor([0.3, 0.0, -0.1])
    count = torch.tensor([2.0, 0.0, 4.0])
    groups = torch.tensor([5, 5, 7])
    assert torch.equal(shrink_ccece(delta, count, groups, 0.0), delta)
    out = shrink_ccece(delta, count, groups, 3.0)
    assert out.dtype == torch.float32
    assert out[1].item() == pytest.approx(0.3)  # a class without samples gets its group's Δ
    # a group without any sample pools to 0
    empty = shrink_ccece(torch.tensor([0.0, 0.0]), torch.tensor([0, 0]), torch.tensor([0, 1]), 5.0)
    assert torch.equal(empty, torch.zeros(2))


def test_many_samples_keep_their_own_delta_and_agree_with_ccece():
    gen = torch.Generator().manual_seed(0)
    conf = torch.rand(4000, generator=gen, dtype=torch.float64)
    correct = torch.rand(4000, generator=gen, dtype=torch.float64) < conf.sqrt()
    classes = torch.randint(0, 3, (4000,), generator=gen)
    delta = ccece(conf, correct, classes, 3)
    count = torch.bincount(classes, minlength=3)
    out = shrink_ccece(delta, count, torch.zeros(3, dtype=torch.long), 1.0)
    assert (out - delta).abs().max() < 0.002  # κ = 1 against ~1,300 samples per class


@pytest.mark.parametrize(
    ("count", "groups", "strength", "message"),
    [
        (torch.tensor([1.0]), torch.tensor([0, 0]), 1.0, "count"),
        (torch.tensor([1.0, 2.0]), torch.tensor([0]), 1.0, "groups"),
        (torch.tensor([1.0, -2.0]), torch.tensor([0, 0]), 1.0, "count"),
        (torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0]), 1.0, "groups"),
        (torch.tensor([1.0, 2.0]), torch.tensor([0, 0]), -1.0, "strength"),
    ],
)
def test_bad_arguments_name_the_argument(count, groups, strength, message):
    with pytest.raises(ValueError, match=message):
        shrink_ccece(torch.tensor([0.1, 0.2]), count, groups, strength)
