import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tailteacher.labels import calibrate_soft_labels

SCORES = torch.tensor([[0.70, 0.20, 0.00], [0.05, 0.00, 0.95]], dtype=torch.float64)
DELTA = torch.tensor([-0.10, 0.15, 0.02], dtype=torch.float64)


def test_eq5_literal_hand_computed():
    # λ = 2: shift = (−0.20, +0.30, +0.04), then clamp to [0, 1].
    out = calibrate_soft_labels(SCORES, DELTA, lam=2.0)
    expected = torch.tensor([[0.50, 0.50, 0.04], [0.00, 0.30, 0.99]], dtype=torch.float64)
    torch.testing.assert_close(out, expected)


def test_eq5_nonzero_support_keeps_zeros():
    out = calibrate_soft_labels(SCORES, DELTA, lam=2.0, support="nonzero")
    expected = torch.tensor([[0.50, 0.50, 0.00], [0.00, 0.00, 0.99]], dtype=torch.float64)
    torch.testing.assert_close(out, expected)


def test_lambda_zero_is_identity_and_input_untouched():
    before = SCORES.clone()
    assert torch.equal(calibrate_soft_labels(SCORES, DELTA, lam=0.0), SCORES)
    calibrate_soft_labels(SCORES, DELTA, lam=5.0)
    assert torch.equal(SCORES, before)


@given(
    st.integers(0, 50),
    st.integers(1, 10),
    st.floats(-5, 5),
    st.sampled_from(["all", "nonzero"]),
    st.integers(0, 999),
)
def test_output_stays_in_unit_interval(m, c, lam, support, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(m, c, generator=g) * (torch.rand(m, c, generator=g) < 0.5)
    delta = torch.rand(c, generator=g) * 2 - 1
    out = calibrate_soft_labels(scores, delta, lam, support)
    assert out.shape == scores.shape and out.dtype == scores.dtype
    assert bool(((out >= 0) & (out <= 1)).all())
    if support == "nonzero":
        assert bool((out[scores == 0] == 0).all())


def test_bad_support_is_named():
    with pytest.raises(ValueError, match="support"):
        calibrate_soft_labels(SCORES, DELTA, 1.0, support="top1")  # type: ignore[arg-type]
