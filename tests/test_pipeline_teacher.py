"""The teacher stage end to end on the `tiny` benchmark: a few steps, real files, real evaluator."""

import json
from pathlib import Path

import pytest
import torch

from tailteacher.cli import main
from tailteacher.data.synth import generate

CONFIG = Path(__file__).parents[1] / "src" / "tailteacher" / "configs" / "demo.yaml"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    generate("tiny", 0, out)
    assert main(["split", "--train", str(out / "train.json"), "--out", str(out / "split")]) == 0
    return out


def overrides(data: Path, run: Path, kind: str) -> list[str]:
    return [
        f"--set=data.train_json={data}/split/train.json",
        f"--set=data.heldout_json={data}/split/heldout.json",
        f"--set=data.val_json={data}/val.json",
        f"--set=data.image_root={data}/images",
        "--set=data.image_size=64",
        "--set=data.batch_size=4",
        "--set=data.workers=0",
        "--set=model.image_min_size=64",
        "--set=model.image_max_size=64",
        "--set=model.roi_batch_size_per_image=64",
        f"--set=targets.kind={kind}",
        "--set=train.max_steps=3",
        "--set=train.warmup_steps=1",
        "--set=train.checkpoint_every=2",
        f"--set=run.run_dir={run}",
    ]


def test_train_teacher_with_similarity_targets_then_predict_and_evaluate(tiny, tmp_path, capsys):
    run = tmp_path / "teacher"
    assert main(["train-teacher", str(CONFIG), *overrides(tiny, run, "similarity")]) == 0
    out = capsys.readouterr().out
    assert "teacher (mask AP on val): AP" in out
    for name in (
        "config.yaml",
        "prototypes.safetensors",
        "nearest_classes.md",
        "model_final.safetensors",
        "val_results.json",
        "val_metrics.json",
        "teacher.json",
        "metrics.jsonl",
    ):
        assert (run / name).is_file(), name
    summary = json.loads((run / "teacher.json").read_text())
    assert summary["frequency_groups"] == {"r": 5, "c": 5, "f": 2}
    assert summary["skipped_images"] == {"count": 0, "total": 136, "images": []}
    assert summary["nonfinite_steps_skipped"] == 0
    assert summary["metrics"]["AP"] >= 0
    assert set(summary["metrics"]) >= {"AP", "APr", "APc", "APf"}
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 3

    results = tmp_path / "results.json"
    args = [
        "predict",
        str(CONFIG),
        *overrides(tiny, run, "similarity"),
        "--checkpoint",
        str(run / "model_final.safetensors"),
        "--data",
        str(tiny / "val.json"),
        "--out",
        str(results),
    ]
    assert main(args) == 0
    # The same weights on the same images give the same detections as the teacher's own evaluation.
    assert json.loads(results.read_text()) == json.loads((run / "val_results.json").read_text())
    metrics = tmp_path / "m.json"
    assert (
        main(["evaluate", "--gt", str(tiny / "val.json"), "--results", str(results), "--out", str(metrics)])
        == 0
    )
    ours = json.loads(metrics.read_text())["metrics"]["AP"]
    assert ours == pytest.approx(summary["metrics"]["AP"], abs=1e-12)

    # Eq. 4 on the held-out split, with the teacher's own scores.
    assert main(["calibrate", str(CONFIG), *overrides(tiny, run, "similarity")]) == 0
    assert "ECE" in capsys.readouterr().out
    calib = json.loads((run / "calibration" / "calibration.json").read_text())
    from safetensors.torch import load_file

    delta = load_file(str(run / "calibration" / "delta.safetensors"))["delta"]
    assert delta.shape == (12,) and bool((delta.abs() <= 1).all())
    assert delta.tolist() == pytest.approx([calib["delta"][str(i)] for i in range(1, 13)], abs=1e-6)
    for name in ("heldout_results.json", "reliability_all.png", "reliability_r.png"):
        assert (run / "calibration" / name).is_file()

    # The student: labeled + unlabeled images with calibrated pseudo-labels (Eq. 5), 2 steps.
    student = tmp_path / "student"
    args = [
        *overrides(tiny, student, "onehot"),
        f"--set=data.unlabeled_json={tiny}/unlabeled.json",
        "--set=train.max_steps=2",
        f"--set=student={{teacher_checkpoint: {run}/model_final.safetensors, "
        f"delta: {run}/calibration/delta.safetensors, pseudo_labels: calibrated, box_threshold: 0.05, "
        "unlabeled_batch_size: 2}",
    ]
    assert main(["train-student", str(CONFIG), *args]) == 0
    assert "student (mask AP on val): AP" in capsys.readouterr().out
    logged = [json.loads(line) for line in (student / "metrics.jsonl").read_text().splitlines()]
    assert any(k.startswith("unsup_loss_cls_stage0") for k in logged[-1])
    assert any(k.startswith("sup_loss_mask") for k in logged[-1])
    assert json.loads((student / "student.json").read_text())["pseudo_labels"] == "calibrated"


def test_bad_config_key_and_bad_checkpoint_exit_2(tiny, tmp_path, capsys):
    assert main(["train-teacher", str(CONFIG), "--set", "train.lrr=1"]) == 2
    err = capsys.readouterr().err
    assert "train.lrr" in err and "Traceback" not in err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    args = [
        "predict",
        str(CONFIG),
        *overrides(tiny, tmp_path / "r", "onehot"),
        "--checkpoint",
        str(bad),
        "--data",
        str(tiny / "val.json"),
        "--out",
        str(tmp_path / "x.json"),
    ]
    assert main(args) == 2
    assert "--checkpoint: cannot read" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_wrong_image_root_stops_before_training(tiny, tmp_path, capsys):
    args = [
        "train-teacher",
        str(CONFIG),
        *overrides(tiny, tmp_path / "r", "onehot"),
        f"--set=data.image_root={tmp_path}",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "file not found" in err and "image id=" in err
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_calibrate_refuses_a_heldout_split_that_overlaps_training(tiny, tmp_path, capsys):
    args = [
        *overrides(tiny, tmp_path / "r", "onehot"),
        f"--set=data.heldout_json={tiny}/train.json",
        f"--set=data.train_json={tiny}/train.json",
    ]
    assert main(["calibrate", str(CONFIG), *args, "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "also in data.train_json" in capsys.readouterr().err


def test_random_init_prototypes_do_not_depend_on_the_global_seed(tiny, tmp_path):
    from safetensors.torch import load_file

    from tailteacher.config_io import load_config
    from tailteacher.pipeline.prototypes import compute_prototypes

    paths = []
    for k, global_seed in enumerate((1, 2)):
        torch.manual_seed(global_seed)  # what a random-init trunk drew from before
        state = torch.get_rng_state()
        sets = [o.removeprefix("--set=") for o in overrides(tiny, tmp_path / f"p{k}", "similarity")]
        paths.append(compute_prototypes(load_config(CONFIG, sets), progress=False))
        assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is left as it was
    first, second = (load_file(p) for p in paths)
    assert torch.equal(first["prototypes"], second["prototypes"])
