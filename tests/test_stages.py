"""The stage runner and the ablation's tables on hand-made inputs (no training)."""

import json

import pytest

from tailteacher.engine.config_files import canonical_hash
from tailteacher.errors import InputError
from tailteacher.pipeline.ablation import AblationPlan, aggregate
from tailteacher.pipeline.stages import (
    DONE,
    HASH_VERSION,
    STARTED,
    StageNotFinished,
    finished_only,
    run_stage,
)
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


def test_a_record_without_the_hash_version_is_refused_as_made_by_an_older_tailteacher(tmp_path):
    folder = tmp_path / "teacher"
    folder.mkdir()
    digest = canonical_hash({"a": 1})
    (folder / DONE).write_text(json.dumps({"stage": "teacher", "hash": digest, "result": {}}))
    with pytest.raises(InputError) as caught:
        run_stage("teacher", folder, {"a": 1}, lambda r: {}, log=lambda _: None)
    message = str(caught.value)
    assert f"{folder / DONE}: stage 'teacher' was recorded by an older tailteacher" in message
    assert f"stage hash version 1; this one uses {HASH_VERSION}" in message
    assert f"remove {folder} to run the stage again" in message and "other inputs" not in message
    (folder / DONE).unlink()  # a stopped stage of another version: the same refusal
    (folder / STARTED).write_text(json.dumps({"stage": "teacher", "hash_version": 1, "hash": digest}))
    with pytest.raises(InputError, match="recorded by an older tailteacher"):
        run_stage("teacher", folder, {"a": 1}, lambda r: {}, log=lambda _: None)
    (folder / STARTED).write_text(json.dumps({"hash_version": HASH_VERSION + 1, "hash": digest}))
    with pytest.raises(InputError, match=f"a newer tailteacher \\(stage hash version {HASH_VERSION + 1};"):
        run_stage("teacher", folder, {"a": 1}, lambda r: {}, log=lambda _: None)


def test_records_carry_the_hash_version_and_the_number_of_processes(tmp_path):
    run_stage("s", tmp_path, {"a": 1}, lambda r: {}, log=lambda _: None)
    record = json.loads((tmp_path / DONE).read_text())
    assert record["hash_version"] == HASH_VERSION == 2 and record["inputs"] == {"a": 1}
    assert record["processes"] == 1


def test_finished_only_returns_finished_stages_refuses_other_hashes_and_runs_nothing(tmp_path):
    run_stage("s", tmp_path / "done", {"a": 1}, lambda r: {"v": 1}, log=lambda _: None)
    calls = []
    with finished_only():
        got = run_stage("s", tmp_path / "done", {"a": 1}, calls.append, log=lambda _: None)
        assert got.skipped and got.result == {"v": 1}
        with pytest.raises(StageNotFinished):
            run_stage("s", tmp_path / "never", {"a": 1}, calls.append, log=lambda _: None)
        with pytest.raises(InputError, match="collect with the config and --set it ran with"):
            run_stage("s", tmp_path / "done", {"a": 2}, calls.append, log=lambda _: None)
    assert calls == [] and not (tmp_path / "never").exists()
    run_stage("s", tmp_path / "never", {"a": 1}, lambda r: calls.append(r) or {}, log=lambda _: None)
    assert calls == [False]


def test_finished_rows_read_this_configs_finished_teachers_and_refuse_another_configs(tmp_path):
    from tailteacher.pipeline.ablation import finished_rows
    from tailteacher.pipeline.run import teacher_inputs, with_updates

    config = _tiny_config(tmp_path)
    metrics = {"AP": 0.5, "APr": 0.1, "APc": 0.2, "APf": 0.3}
    result = {"metrics": metrics, "val_ece": {"all": 0.05}, "checkpoint": "none"}
    plan = AblationPlan(seeds=[0], fractions=())
    onehot = with_updates(config, train={"seed": 0}, targets={"kind": "onehot"})
    folder = tmp_path / "out" / "seed0" / "full" / "teacher_onehot"
    run_stage("teacher onehot", folder, teacher_inputs(onehot), lambda r: result, log=lambda _: None)
    (tmp_path / "out" / "seed0" / "full" / "teacher_uniform").mkdir()
    (tmp_path / "out" / "seed0" / "full" / "teacher_uniform" / DONE).write_text("{not json")
    rows = finished_rows(config, plan, 0, tmp_path / "out")
    assert rows == {"onehot@1": table_row(result["metrics"], result["val_ece"])}
    # A run-only key does not matter; a key that changes the teacher does.
    assert finished_rows(with_updates(config, data={"workers": 7}), plan, 0, tmp_path / "out") == rows
    with pytest.raises(InputError, match=f"{folder / DONE}: stage 'teacher onehot' finished with other"):
        finished_rows(with_updates(config, train={"lr": 1.0}), plan, 0, tmp_path / "out")


def _tiny_config(tmp_path):
    from tailteacher.config import Config

    for name in ("train", "val", "heldout"):
        (tmp_path / f"{name}.json").write_text(f'{{"{name}": 1}}')
    return Config.model_validate(
        {
            "data": {
                "train_json": str(tmp_path / "train.json"),
                "val_json": str(tmp_path / "val.json"),
                "heldout_json": str(tmp_path / "heldout.json"),
                "image_root": str(tmp_path),
            },
            "train": {"max_steps": 2},
            "run": {"run_dir": str(tmp_path / "out")},
        }
    )
