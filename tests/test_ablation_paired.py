"""The ablation's paired comparison: each student minus the control of the same seed."""

import pytest

from tailteacher.pipeline.ablation import paired_differences


def row(ap: float, apr: float | None, ece: float = 0.1) -> dict[str, float | None]:
    return {"AP": ap, "APr": apr, "APc": 0.0, "APf": 0.0, "ECE": ece}


def test_differences_are_taken_per_seed_then_averaged():
    per_seed = {
        0: {"student_labeled@1": row(40.0, 20.0), "student_soft@1": row(42.0, 25.0, 0.08)},
        1: {"student_labeled@1": row(50.0, 30.0), "student_soft@1": row(51.0, 31.0, 0.12)},
        2: {"student_soft@1": row(10.0, 5.0)},  # no control for this seed: not paired
    }
    paired = paired_differences(per_seed)
    assert set(paired) == {"student_soft@1"}
    mean, std = paired["student_soft@1"]["AP"]
    assert mean == pytest.approx(1.5) and std == pytest.approx(0.7071067811865476)
    mean, std = paired["student_soft@1"]["APr"]
    assert mean == pytest.approx(3.0) and std == pytest.approx(2.8284271247461903)
    assert paired["student_soft@1"]["ECE"][0] == pytest.approx(0.0)


def test_a_missing_metric_is_left_out_of_its_mean():
    per_seed = {
        0: {"student_labeled@1": row(40.0, None), "student_onehot@1": row(41.0, 3.0)},
        1: {"student_labeled@1": row(40.0, 10.0), "student_onehot@1": row(43.0, 14.0)},
    }
    paired = paired_differences(per_seed)["student_onehot@1"]
    assert paired["APr"] == (pytest.approx(4.0), None)  # one seed had both: no std
    assert paired["AP"][0] == pytest.approx(2.0)
