import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tailteacher.labels import (
    CalibrationAccumulator,
    ccece,
    expected_calibration_error,
    reliability_bins,
)
from tailteacher.labels.ccece import bin_index

# Four detections, B = 10:
#   0.05 wrong → bin 0 | 0.15 right, 0.15 wrong → bin 1 | 0.95 right → bin 9
# ECE = (1·|0 − .05| + 2·|.5 − .15| + 1·|1 − .95|) / 4 = (.05 + .70 + .05) / 4 = 0.2
CONF = torch.tensor([0.05, 0.15, 0.15, 0.95], dtype=torch.float64)
CORRECT = torch.tensor([False, True, False, True])
CLASSES = torch.tensor([0, 0, 1, 1])


def test_ece_hand_computed():
    assert expected_calibration_error(CONF, CORRECT) == pytest.approx(0.2, abs=1e-12)


def test_reliability_bins_hand_computed():
    bins = reliability_bins(CONF, CORRECT)
    assert bins.count.tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]
    torch.testing.assert_close(bins.accuracy[[0, 1, 9]], torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    torch.testing.assert_close(
        bins.confidence[[0, 1, 9]], torch.tensor([0.05, 0.15, 0.95], dtype=torch.float64)
    )
    assert bins.accuracy[2:9].abs().sum() == 0 and bins.edges[1].item() == pytest.approx(0.1)


def test_ccece_hand_computed():
    # class 0: (0.05, wrong), (0.15, right) → mean(correct − conf) = (−0.05 + 0.85) / 2 = 0.40
    # class 1: (0.15, wrong), (0.95, right) → (−0.15 + 0.05) / 2 = −0.05;  class 2: no sample → 0
    delta = ccece(CONF, CORRECT, CLASSES, num_classes=3)
    torch.testing.assert_close(delta, torch.tensor([0.40, -0.05, 0.0], dtype=torch.float64))


def test_bin_edges_are_right_closed_with_zero_in_the_first():
    values = [0.0, 0.1, 0.1000001, 0.3, 0.9, 0.95, 1.0]
    for dtype in (torch.float32, torch.float64):
        assert bin_index(torch.tensor(values, dtype=dtype), 10).tolist() == [0, 0, 1, 2, 8, 9, 9]


def samples(max_m=300, max_c=6):
    @st.composite
    def build(draw):
        m = draw(st.integers(0, max_m))
        c = draw(st.integers(1, max_c))
        g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
        conf = torch.rand(m, generator=g, dtype=torch.float64)
        correct = torch.rand(m, generator=g, dtype=torch.float64) < 0.5
        classes = torch.randint(0, c, (m,), generator=g)
        return conf, correct, classes, c

    return build()


@given(samples(), st.integers(1, 40), st.integers(1, 40))
def test_ccece_does_not_depend_on_the_number_of_bins(s, b1, b2):
    conf, correct, classes, c = s
    torch.testing.assert_close(ccece(conf, correct, classes, c, b1), ccece(conf, correct, classes, c, b2))


@given(samples())
def test_ccece_is_the_mean_gap_per_class(s):
    conf, correct, classes, c = s
    gap = correct.double() - conf
    expected = torch.tensor(
        [gap[classes == i].mean().item() if (classes == i).any() else 0.0 for i in range(c)]
    )
    torch.testing.assert_close(ccece(conf, correct, classes, c), expected.double())


def test_ccece_is_near_zero_on_perfectly_calibrated_data():
    g = torch.Generator().manual_seed(0)
    m, c = 200_000, 5
    conf = torch.rand(m, generator=g, dtype=torch.float64)
    correct = torch.rand(m, generator=g, dtype=torch.float64) < conf  # P(correct | conf) = conf
    classes = torch.randint(0, c, (m,), generator=g)
    delta = ccece(conf, correct, classes, c)
    # Each class has ~40k samples; the std of mean(correct − conf) is about sqrt(1/6 / 40k) ≈ 0.002.
    assert delta.abs().max() < 0.01
    assert expected_calibration_error(conf, correct) < 0.01


def test_ccece_sign_overconfident_negative():
    conf = torch.full((1000,), 0.9)
    correct = torch.arange(1000) % 2 == 0  # 50 % right at 90 % confidence
    delta = ccece(conf, correct, torch.zeros(1000, dtype=torch.long), 1)
    assert delta.item() == pytest.approx(-0.4, abs=1e-6)


@given(samples(max_m=500, max_c=1), st.integers(1, 30))
def test_ece_agrees_with_torchmetrics(s, num_bins):
    from torchmetrics.functional.classification import binary_calibration_error

    conf, correct, _, _ = s
    if conf.numel() == 0:
        return
    ours = expected_calibration_error(conf, correct, num_bins)
    theirs = binary_calibration_error(conf.float(), correct.long(), n_bins=num_bins, norm="l1")
    assert ours == pytest.approx(theirs.item(), abs=1e-5)


def test_empty_input():
    empty = torch.zeros(0)
    assert expected_calibration_error(empty, empty.bool()) == 0.0
    assert ccece(empty, empty.bool(), empty.long(), 3).tolist() == [0.0, 0.0, 0.0]


@given(samples(), st.integers(1, 4))
def test_accumulator_equals_one_shot(s, chunks):
    conf, correct, classes, c = s
    acc = CalibrationAccumulator(c, num_bins=7)
    for parts in zip(
        conf.tensor_split(chunks),
        correct.tensor_split(chunks),
        classes.tensor_split(chunks),
        strict=True,
    ):
        acc.update(*parts)
    torch.testing.assert_close(acc.ccece(), ccece(conf, correct, classes, c, 7))
    assert acc.ece() == pytest.approx(expected_calibration_error(conf, correct, 7), abs=1e-12)
    subset = torch.tensor([0])
    mask = classes == 0
    assert acc.ece(subset) == pytest.approx(
        expected_calibration_error(conf[mask], correct[mask], 7), abs=1e-12
    )
    torch.testing.assert_close(acc.reliability().count, reliability_bins(conf, correct, 7).count)
