"""The stage runner and the ablation's tables on hand-made inputs (no training)."""

import json

import pytest

from tailteacher.pipeline.ablation import AblationPlan, aggregate
from tailteacher.pipeline.stages import DONE, STARTED, run_stage
from tailteacher.report.markdown import format_table, table_row


def test_a_stage_runs_once_then_is_skipped_with_its_recorded_result(tmp_path):
    calls = []

    def action(resume):
        calls.append(resume)
        return {"value": 7}

    first = run_stage("s", tmp_path / "s", {"a": 1}, action, log=lambda _: None)
    again = run_stage("s", tmp_path / "s", {"a": 1}, action, log=lambda _: None)
    assert calls == [False] and not first.skipped and again.skipped
    assert first.result == again.result == {"value": 7} and first.hash == again.hash
    assert not (tmp_path / "s" / STARTED).exists()
    assert json.loads((tmp_path / "s" / DONE).read_text())["result"] == {"value": 7}


def test_a_stopped_stage_resumes_and_other_inputs_are_refused(tmp_path):
    def crash(resume):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_stage("s", tmp_path, {"a": 1}, crash, log=lambda _: None)
    assert (tmp_path / STARTED).is_file() and not (tmp_path / DONE).exists()
    with pytest.raises(ValueError, match="started here with other inputs"):
        run_stage("s", tmp_path, {"a": 2}, lambda r: {}, log=lambda _: None)
    seen = []
    run_stage("s", tmp_path, {"a": 1}, lambda r: seen.append(r) or {}, log=lambda _: None)
    assert seen == [True]
    with pytest.raises(ValueError, match="finished here with other inputs"):
        run_stage("s", tmp_path, {"a": 2}, lambda r: {}, log=lambda _: None)


def test_table_rows_are_points_and_empty_groups_are_none():
    row = table_row({"AP": 0.25, "APr": -1.0, "APc": 0.5, "APf": 0.125}, {"all": 0.0625})
    assert row == {"AP": 25.0, "APr": None, "APc": 50.0, "APf": 12.5, "ECE": 0.0625}
    table = format_table({"teacher": row})
    assert table.splitlines()[2] == "| teacher | 25.0 | - | 50.0 | 12.5 | 0.062 |"


def test_aggregate_is_mean_and_sample_std_over_the_seeds_that_have_the_row():
    per_seed = {
        0: {"onehot@1": {"AP": 10.0, "APr": None, "APc": 1.0, "APf": 1.0, "ECE": 0.1}},
        1: {"onehot@1": {"AP": 14.0, "APr": 2.0, "APc": 1.0, "APf": 1.0, "ECE": 0.3}},
        2: {},
    }
    summary = aggregate(per_seed)["onehot@1"]
    assert summary["AP"] == (12.0, pytest.approx(2.8284271247461903))  # stdev([10, 14]) = √8
    assert summary["APr"] == (2.0, None)  # one seed has a value: no std
    assert summary["ECE"] == (pytest.approx(0.2), pytest.approx(0.1414213562373095))
    assert (
        format_table({"x": summary}).splitlines()[2]
        == "| x     | 12.0 ± 2.8 | 2.0 | 1.0 ± 0.0 | 1.0 ± 0.0 | 0.200 ± 0.141 |"  # padded to "model"
    )


def test_plan_refuses_unknown_rows_and_bad_fractions():
    with pytest.raises(ValueError, match="unknown row"):
        AblationPlan(seeds=[0], student_teacher="sim_g3")
    with pytest.raises(ValueError, match="fractions"):
        AblationPlan(seeds=[0], fractions=[1.0])
    assert [r.key for r in AblationPlan(seeds=[0], temperature=0.05).teacher_rows()][-2:] == [
        "sim_g0_T0.05",
        "sim_g15_T0.05",
    ]


def test_finished_rows_read_finished_records_and_skip_unreadable_ones(tmp_path):
    from tailteacher.pipeline.ablation import _finished_rows

    result = {"metrics": {"AP": 0.5, "APr": 0.1, "APc": 0.2, "APf": 0.3}, "val_ece": {"all": 0.05}}
    run_stage("t", tmp_path / "full" / "teacher_onehot", {"a": 1}, lambda r: result, log=lambda _: None)
    (tmp_path / "full" / "teacher_uniform").mkdir(parents=True)
    (tmp_path / "full" / "teacher_uniform" / DONE).write_text("{not json")
    (tmp_path / "full" / "student_soft").mkdir(parents=True)
    (tmp_path / "full" / "student_soft" / DONE).write_text('{"hash": "x"}')
    rows = _finished_rows(tmp_path, AblationPlan(seeds=[0], fractions=()))
    assert rows == {"onehot@1": table_row(result["metrics"], result["val_ece"])}
