"""The command line of a whole `tailteacher run` on the `tiny` benchmark in a few CPU-seconds per
stage, for the tests that stop, kill or starve a run and compare it with an unhindered one."""

import sys
from pathlib import Path


def tiny_run_sets(data: Path, run: Path, **overrides: object) -> dict[str, object]:
    """The ``--set`` keys of ``tiny_run_command`` (``overrides`` win)."""
    sets: dict[str, object] = {
        "data.train_json": f"{data}/train.json",
        "data.heldout_json": "null",
        "data.val_json": f"{data}/val.json",
        "data.unlabeled_json": f"{data}/unlabeled.json",
        "data.image_root": f"{data}/images",
        "data.image_size": 64,
        "data.batch_size": 2,
        "data.workers": 0,
        "model.image_min_size": 64,
        "model.image_max_size": 64,
        "model.roi_batch_size_per_image": 32,
        "model.proposals_test": 50,
        "model.detections_per_image": 20,
        "targets.kind": "onehot",
        "train.max_steps": 3,
        "train.warmup_steps": 1,
        "train.checkpoint_every": 2,
        "student.max_steps": 8,
        "student.unlabeled_batch_size": 2,
        "run.run_dir": str(run),
    }
    sets.update(overrides)
    return sets


def tiny_run_command(data: Path, run: Path, **overrides: object) -> list[str]:
    """``python -m tailteacher run demo`` on ``data`` (a generated `tiny` benchmark) into ``run``:
    64 px images, one-hot teacher targets, 3 teacher and 8 student steps, a checkpoint every 2;
    ``overrides`` win; pass them as a dict of dotted keys: ``**{"train.max_steps": 4}``."""
    sets = tiny_run_sets(data, run, **overrides)
    return [sys.executable, "-m", "tailteacher", "run", "demo", *(f"--set={k}={v}" for k, v in sets.items())]
