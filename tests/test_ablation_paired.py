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


def test_comparisons_are_taken_within_each_seed_and_listed_seed_by_seed():
    from tailteacher.pipeline.paired import comparison_table, paired_comparisons, per_seed_differences

    per_seed = {  # string seeds as in ablation.json, out of order on purpose
        "1": {
            "uniform@1": row(60.0, 50.0, 0.10),
            "sim_g15@1": row(61.5, 52.0, 0.12),
            "student_labeled@1": row(62.0, 53.0),
            "student_soft@1": row(63.0, 54.5),
        },
        "0": {
            "uniform@1": row(58.0, 40.0, 0.10),
            "sim_g15@1": row(58.5, 39.0, 0.11),
            "student_labeled@1": row(59.0, 41.0),
            "student_soft@1": row(61.0, 45.0),
        },
        "2": {"uniform@1": row(57.0, None)},  # no similarity teacher: not paired
    }
    diffs = per_seed_differences(per_seed, "sim_g15@1", "uniform@1")
    assert list(diffs["AP"]) == ["0", "1"]
    assert diffs["AP"] == {"0": 0.5, "1": 1.5} and diffs["APr"] == {"0": -1.0, "1": 2.0}

    out = paired_comparisons(per_seed, ["student_soft", "student_labeled"], "student_labeled")
    assert list(out) == ["student soft − control", "similarity γ 1.5 − uniform smoothing (teachers)"]
    soft = out["student soft − control"]
    assert (soft["row"], soft["reference"]) == ("student_soft", "student_labeled")
    assert soft["AP"]["mean"] == pytest.approx(1.5) and soft["AP"]["std"] == pytest.approx(0.7071067811865476)
    assert soft["APr"]["per_seed"] == {"0": 4.0, "1": 1.5}

    table = comparison_table(out).splitlines()
    assert table[0] == "| comparison | AP | APr | ECE | AP (seed 0, 1) | APr (seed 0, 1) |"
    assert (
        table[2]
        == "| student soft − control | +1.5 ± 0.7 | +2.8 ± 1.8 | +0.000 ± 0.000 | +2.0 / +1.0 | +4.0 / +1.5 |"
    )
    assert table[3] == (
        "| similarity γ 1.5 − uniform smoothing (teachers) | +1.0 ± 0.7 | +0.5 ± 2.1 | +0.015 ± 0.007 "
        "| +0.5 / +1.5 | -1.0 / +2.0 |"
    )
