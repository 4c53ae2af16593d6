"""`tailteacher run` and `tailteacher ablate` end to end on the `tiny` benchmark (a few steps)."""

import json
import shutil
from pathlib import Path

import pytest

from tailteacher.cli import main
from tailteacher.data.synth import generate


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    generate("tiny", 0, out)
    return out


def overrides(data: Path, run: Path, steps: int = 2) -> list[str]:
    return [
        f"--set=data.train_json={data}/train.json",
        "--set=data.heldout_json=null",  # the run's own split stage
        f"--set=data.val_json={data}/val.json",
        f"--set=data.unlabeled_json={data}/unlabeled.json",
        f"--set=data.image_root={data}/images",
        "--set=data.image_size=64",
        "--set=data.batch_size=2",
        "--set=data.workers=0",
        "--set=model.image_min_size=64",
        "--set=model.image_max_size=64",
        "--set=model.roi_batch_size_per_image=32",
        "--set=model.proposals_test=50",
        "--set=model.detections_per_image=20",
        f"--set=train.max_steps={steps}",
        "--set=train.warmup_steps=1",
        "--set=student.max_steps=2",
        "--set=student.unlabeled_batch_size=2",
        f"--set=run.run_dir={run}",
    ]


def test_run_all_stages_then_skip_them_all(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", "demo", *overrides(tiny, run), "--set=targets.kind=similarity"]) == 0
    out = capsys.readouterr().out
    for stage in ("split", "prototypes", "teacher", "calibrate", "control", "pseudo_labels", "student"):
        assert f"[{stage}] running" in out and (run / stage.replace("calibrate", "calibration")).is_dir()
    quality = json.loads((run / "pseudo_labels" / "pseudo_labels.json").read_text())  # the pool's truth
    assert [r["group"] for r in quality["rows"]] == ["rare", "common", "frequent", "all"]
    assert quality["rows"][-1]["objects"] == sum(r["objects"] for r in quality["rows"][:3]) > 0
    assert quality["mode"] == "calibrated" and quality["images"] > 0
    assert "| teacher " in out and "| student (calibrated) " in out and "report: " in out
    assert "student − control (same teacher, same steps" in out
    report = json.loads((run / "report.json").read_text())
    rows = report["rows"]
    assert set(rows) == {
        *("teacher", "control (labeled only)", "student (calibrated)"),
        *("student − control", "student − teacher"),
    }
    for row in rows.values():
        assert set(row) == {"AP", "APr", "APc", "APf", "ECE"}
    for gain, ref in (("student − control", "control (labeled only)"), ("student − teacher", "teacher")):
        for k, v in rows[gain].items():  # each paired gain is the difference of the rows
            a, b = rows["student (calibrated)"][k], rows[ref][k]
            assert v == (None if a is None or b is None else pytest.approx(a - b))
    assert (run / "report.md").read_text().startswith("# tailteacher run report")
    assert (run / "teacher" / "val_calibration" / "reliability_all.png").is_file()
    stamp = (run / "teacher" / "model_final.safetensors").stat().st_mtime_ns

    assert main(["run", "demo", *overrides(tiny, run), "--set=targets.kind=similarity"]) == 0
    out = capsys.readouterr().out
    assert "running" not in out and out.count("skipped") == 7
    assert (run / "teacher" / "model_final.safetensors").stat().st_mtime_ns == stamp
    assert json.loads((run / "report.json").read_text())["rows"] == report["rows"]

    # Run-only settings (device, workers, logging and checkpoint cadence) are not inputs (D85).
    run_only = ["--set=train.device=cpu", "--set=data.workers=1", "--set=train.log_every=1"]
    run_only += ["--set=train.checkpoint_every=1", "--set=train.keep_checkpoints=5"]
    assert main(["run", "demo", *overrides(tiny, run), "--set=targets.kind=similarity", *run_only]) == 0
    out = capsys.readouterr().out
    assert "running" not in out and out.count("skipped") == 7

    # A changed config must not mix with the finished stages: refused, exit 2, nothing rewritten.
    assert main(["run", "demo", *overrides(tiny, run), "--set=targets.kind=onehot"]) == 2
    assert "other inputs" in capsys.readouterr().err

    # Another unlabeled pool: the teacher, its calibration and the control (w = 0) never read it
    # and stay; the student did, and is refused until its folder is removed (D86).
    pool = json.loads((tiny / "unlabeled.json").read_text())
    pool["images"] = pool["images"][1:]
    (tmp_path / "pool.json").write_text(json.dumps(pool))
    other_pool = [*overrides(tiny, run), "--set=targets.kind=similarity"]
    other_pool.append(f"--set=data.unlabeled_json={tmp_path / 'pool.json'}")
    assert main(["run", "demo", *other_pool]) == 2
    captured = capsys.readouterr()
    for stage in ("split", "prototypes", "teacher", "calibrate", "control"):
        assert f"[{stage}] done already" in captured.out
    assert f"{run / 'student' / 'stage.json'}: stage 'student' finished here with other" in captured.err
    shutil.rmtree(run / "student")
    assert main(["run", "demo", *other_pool]) == 0
    out = capsys.readouterr().out
    assert out.count("running") == 1 and "[student] running" in out and out.count("skipped") == 5


@pytest.mark.slow  # ~2 min on 2 cores: twelve tiny trainings
def test_ablate_one_seed_writes_every_row(tiny, tmp_path, capsys):
    out = tmp_path / "ablation"
    args = ["ablate", "demo", *overrides(tiny, out), "--seeds", "1", "--fractions", "0.5"]
    assert main(args) == 0
    summary = json.loads((out / "ablation.json").read_text())["summary"]
    expected = {f"{k}@1" for k in ("onehot", "uniform", "sim_g0", "sim_g15", "onehot_random_init")}
    expected |= {f"student_{k}@1" for k in ("onehot", "soft", "calibrated", "calibrated_topk", "labeled")}
    expected |= {"onehot@0.5", "sim_g15@0.5"}
    assert set(summary) == expected
    assert all(v["AP"][1] is None for v in summary.values())  # one seed: no std
    md = (out / "ablation.md").read_text()
    assert "+ calibration correction (Eq. 5)" in md and "50 %" in md
    assert "Students − control, paired per seed" in md
    paired = json.loads((out / "ablation.json").read_text())["paired_with_control"]
    assert set(paired) == {f"student_{k}@1" for k in ("onehot", "soft", "calibrated", "calibrated_topk")}
    comparisons = json.loads((out / "ablation.json").read_text())["comparisons"]
    assert comparisons["student soft − control"]["AP"]["per_seed"] == {
        "0": pytest.approx(summary["student_soft@1"]["AP"][0] - summary["student_labeled@1"]["AP"][0])
    }
    assert "Paired comparisons, seed by seed" in md and "AP (seed 0)" in md
    # The half-label teachers trained for half the steps (same epochs).
    steps = json.loads(
        (out / "seed0" / "fraction0.5" / "teacher_onehot" / "metrics.jsonl").read_text().splitlines()[-1]
    )
    assert steps["step"] == 1
    capsys.readouterr()
    assert main(["ablate", "demo", *overrides(tiny, out), "--seeds", "1", "--only-seed", "3"]) == 2

    # --collect reads the rows whose hashes this config gives (a run-only key does not count) and
    # refuses rows made with another config (D87).
    collect = [*args, "--collect", "--set=data.workers=1", "--set=train.log_every=1"]
    assert main(collect) == 0
    assert json.loads((out / "ablation.json").read_text())["summary"] == summary
    capsys.readouterr()
    assert main([*args, "--collect", "--set=train.lr=0.002"]) == 2
    err = capsys.readouterr().err
    assert "finished with other inputs than this config gives" in err and "collect with the config" in err
