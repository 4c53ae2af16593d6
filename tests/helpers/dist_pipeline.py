"""Run under ``torchrun --nproc-per-node N`` (N = 1 is the one-process reference): pipeline parts
on the `tiny` benchmark, each rank writing what it saw into OUT.

    python -m torch.distributed.run --nproc-per-node 2 dist_pipeline.py predict OUT DATA TEACHER
    python -m torch.distributed.run --nproc-per-node 2 dist_pipeline.py student OUT DATA TEACHER B U
    python -m torch.distributed.run --nproc-per-node 2 dist_pipeline.py run OUT DATA

``predict``: the teacher's evaluation on val (``evaluate_model``) and its calibration on val as the
held-out set, into OUT (rank 0 writes), and what each rank got back into OUT/rank{r}.json.
``student``: 4 student steps at B labeled and U unlabeled images per rank; each rank records the
image ids of every step, its pseudo-label counts and its final weights (OUT/rank{r}.pt).
``run``: ``run_pipeline`` on the tiny run config; each rank records which stages it skipped.
"""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1]))
from tailteacher.config_io import load_config
from tailteacher.engine import init_distributed, shutdown
from tiny_run import tiny_run_sets

STUDENT_STEPS = 4


def tiny_config(data: Path, run: Path, **overrides: object):
    sets = tiny_run_sets(data, run, **overrides)
    return load_config("demo", [f"{k}={v}" for k, v in sets.items()])


def predict(out: Path, data: Path, teacher: Path, rank: int) -> None:
    from tailteacher.pipeline.calibrate import calibrate_teacher
    from tailteacher.pipeline.data import load_train_data
    from tailteacher.pipeline.detector import build_detector, load_detector_weights
    from tailteacher.pipeline.prediction import evaluate_model

    config = tiny_config(data, out, **{"data.heldout_json": f"{data}/val.json"})
    model = build_detector(config, load_train_data(config))
    load_detector_weights(model, teacher)
    device = torch.device("cpu")
    metrics = evaluate_model(model, config.data.val_json, config.data.image_root, device, out, "val")
    report, _ = calibrate_teacher(config, str(teacher))
    got = {"metrics": metrics, "ece": report.ece("all"), "delta": report.delta.tolist()}
    (out / f"rank{rank}.json").write_text(json.dumps(got))


def student(out: Path, data: Path, teacher: Path, batch: int, unlabeled: int, rank: int) -> None:
    from tailteacher.pipeline.student import build_student

    config = tiny_config(
        data,
        out / "run",
        **{
            "data.batch_size": batch,
            "student.unlabeled_batch_size": unlabeled,
            "student.max_steps": STUDENT_STEPS,
            "student.warmup_steps": 1,
            # SGD: an update proportional to the gradient (AdamW's first steps are ±lr per weight,
            # whatever the gradient's size, so a tiny gradient difference moves a weight by 2·lr)
            "train.optimizer": "sgd",
            "student.lr": 0.01,
            "student.pseudo_labels": "soft",
            "student.box_threshold": 0.05,  # a teacher of 3 steps: low scores, some pseudo-labels
            "student.teacher_checkpoint": str(teacher),
            "train.log_every": 1,
            "train.checkpoint_every": 100,
        },
    )
    run = build_student(config, progress=False)
    initial = {k: v.clone() for k, v in run.trainer.model.state_dict().items()}
    seen: list[dict[str, list[int]]] = []
    step_fn = run.trainer.step_fn

    def recording(model, batch_):  # what this rank trained on, then the real step
        (labeled, _), (pairs, _) = batch_
        seen.append({"labeled": [s.image_id for s in labeled], "unlabeled": [p.image_id for p in pairs]})
        return step_fn(model, batch_)

    run.trainer.step_fn = recording
    run.trainer.train()
    torch.save(
        {
            "seen": seen,
            "pseudo_boxes": run.step.pseudo_boxes,
            "initial": initial,
            "weights": run.trainer.model.state_dict(),
        },
        out / f"rank{rank}.pt",
    )


def pipeline(out: Path, data: Path, rank: int) -> None:
    from tailteacher.pipeline.run import run_pipeline

    lines: list[str] = []
    result = run_pipeline(tiny_config(data, out / "run"), log=lines.append)
    got = {"skipped": {s.name: s.skipped for s in result.stages}, "log": lines, "rows": result.rows}
    (out / f"rank{rank}.json").write_text(json.dumps(got))


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    dist = init_distributed()
    what, out, data = argv[0], Path(argv[1]), Path(argv[2])
    out.mkdir(parents=True, exist_ok=True)
    if what == "predict":
        predict(out, data, Path(argv[3]), dist.rank)
    elif what == "student":
        student(out, data, Path(argv[3]), int(argv[4]), int(argv[5]), dist.rank)
    else:
        pipeline(out, data, dist.rank)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    finally:  # also when main raises: a gloo group left to interpreter exit can abort (D122)
        shutdown()
