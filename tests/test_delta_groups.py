"""benchmarks/delta_groups.py: Δ per frequency group, shrunk as the student shrinks it (D100)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "delta_groups", Path(__file__).parents[1] / "benchmarks" / "delta_groups.py"
)
assert _SPEC is not None and _SPEC.loader is not None
delta_groups = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(delta_groups)


def _cat(freq: str, n: int, delta: float | None) -> dict[str, object]:
    return {"frequency": freq, "num_detections": n, "delta": delta}


def test_groups_pool_and_shrink_as_the_student_does():
    cats = [_cat("r", 2, 0.5), _cat("r", 0, None), _cat("f", 10, -0.2), _cat("f", 30, 0.2)]
    raw = delta_groups.group_summary(cats, kappa=0.0)
    assert raw["r"] == {"mean": 0.25, "min": 0.0, "max": 0.5, "classes": 2, "negative": 0}
    assert raw["f"]["negative"] == 1 and "c" not in raw
    # κ = 10: rare pooled Δ = (2·0.5)/2 = 0.5, so (2·0.5 + 10·0.5)/12 = 0.5 and (0 + 10·0.5)/10 = 0.5;
    # frequent pooled Δ = (−2 + 6)/40 = 0.1: (−2 + 1)/20 = −0.05 and (6 + 1)/40 = 0.175.
    shrunk = delta_groups.group_summary(cats, kappa=10.0)
    assert shrunk["r"]["mean"] == pytest.approx(0.5) and shrunk["r"]["min"] == pytest.approx(0.5)
    assert shrunk["f"]["min"] == pytest.approx(-0.05) and shrunk["f"]["max"] == pytest.approx(0.175)
