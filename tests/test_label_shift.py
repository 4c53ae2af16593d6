"""benchmarks/label_shift.py (D124): the EM estimate of a new class mix, exact values."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

_SPEC = importlib.util.spec_from_file_location(
    "label_shift", Path(__file__).parents[1] / "benchmarks" / "label_shift.py"
)
assert _SPEC is not None and _SPEC.loader is not None
label_shift = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(label_shift)
class_posteriors = label_shift.class_posteriors
em_target_prior = label_shift.em_target_prior
mean_prior = label_shift.mean_prior


def test_class_posteriors_divide_by_the_row_sum_and_drop_empty_rows() -> None:
    rows = torch.tensor([[0.2, 0.2], [0.0, 0.0], [0.3, 0.1]])
    assert torch.allclose(class_posteriors(rows), torch.tensor([[0.5, 0.5], [0.75, 0.25]]))


def test_mean_prior_spreads_the_pseudo_count_evenly() -> None:
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert torch.allclose(mean_prior(p, pseudo_count=0), torch.tensor([2 / 3, 1 / 3]))
    assert torch.allclose(mean_prior(p, pseudo_count=1), torch.tensor([2.5 / 4, 1.5 / 4]))
    assert torch.allclose(mean_prior(torch.zeros(0, 4)), torch.full((4,), 0.25))


def test_em_recovers_the_mix_a_bayes_posterior_was_drawn_under() -> None:
    # Two classes, one binary feature: p(a | 0) = 0.9, p(a | 1) = 0.2. Posteriors under the source
    # mix (0.5, 0.5); 100 objects drawn under (0.8, 0.2): exactly 76 show a, 24 show b. The
    # likelihood's maximum is where 0.9 π + 0.2 (1 − π) = 0.76, π = 0.8.
    post_a = torch.tensor([0.45, 0.10]) / 0.55
    post_b = torch.tensor([0.05, 0.40]) / 0.45
    posteriors = torch.stack([post_a] * 76 + [post_b] * 24).double()
    target, steps = em_target_prior(
        posteriors, torch.tensor([0.5, 0.5]).double(), pseudo_count=0, tol=1e-12, max_iter=10_000
    )
    assert torch.allclose(target, torch.tensor([0.8, 0.2]).double(), atol=1e-6)
    assert 1 < steps < 10_000
    # The plain mean of the posteriors is pulled toward the source mix: EM is what recovers 0.8.
    assert float(mean_prior(posteriors, pseudo_count=0)[0]) == pytest.approx(0.76 * 0.45 / 0.55 + 0.24 / 9)


def test_em_on_certain_posteriors_is_their_mean_in_two_steps() -> None:
    posteriors = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    target, steps = em_target_prior(posteriors, torch.tensor([0.1, 0.9]), pseudo_count=0)
    assert torch.allclose(target, torch.tensor([2 / 3, 1 / 3]))
    assert steps == 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: class_posteriors(torch.ones(3)), r"rows: expected \[N, C\]"),
        (lambda: class_posteriors(torch.tensor([[-0.1, 0.2]])), "finite values ≥ 0"),
        (lambda: mean_prior(torch.zeros(0, 2), pseudo_count=0), "pseudo_count"),
        (lambda: em_target_prior(torch.ones(2, 3) / 3, torch.ones(2)), r"source_prior: expected \[3\]"),
        (lambda: em_target_prior(torch.ones(2, 2) / 2, torch.tensor([1.0, 0.0])), "values > 0"),
    ],
)
def test_bad_input_names_the_argument(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        call()
