"""Which parts of the student recipe matter: student variants from one teacher, each against the control.

    python benchmarks/student_recipe.py RUN_DIR [--jobs 2] [--only NAME ...] [--set KEY=VALUE ...]

RUN_DIR is a finished ``tailteacher run`` folder (``teacher/``, ``calibration/``, ``control/``).
Every variant starts from the same teacher with the control's resolved configuration (same
initialisation, schedule and labeled batches) and changes only student keys; it trains into
``RUN_DIR/recipe/NAME`` (skipped when its ``student.json`` exists, so the script resumes). ``--jobs``
runs that many variants side by side, each with ``--threads`` (default ``2 // jobs``, at least
one). The table — mask AP / APr / APc / APf / AP50 / AP75, box AP, ECE, pseudo-boxes per
unlabeled image, and every
column's difference from the control — goes to ``RUN_DIR/recipe/recipe.md`` and ``recipe.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

#: name -> student overrides on top of the control's config (which has unsup_weight = 0).
BASE = {
    "student.unsup_weight": "1.0",
    "student.pseudo_labels": "calibrated",
    "student.support": "nonzero",
    "student.threshold_on": "teacher",
    "student.logit_adjustment": "0",  # the recipe this benchmark measured (D59), before D124/D126
}
VARIANTS: dict[str, dict[str, str]] = {
    "all_losses": {},
    "no_mask": {"student.unsup_mask_loss": "false"},
    "no_mask_no_box": {"student.unsup_mask_loss": "false", "student.unsup_box_loss": "false"},
    "no_mask_no_box_ignore": {
        "student.unsup_mask_loss": "false",
        "student.unsup_box_loss": "false",
        "student.ignore_threshold": "0.05",
    },
    "no_mask_no_box_tau0.5": {
        "student.unsup_mask_loss": "false",
        "student.unsup_box_loss": "false",
        "student.box_threshold": "0.5",
    },
    "no_mask_no_box_tau0.7": {
        "student.unsup_mask_loss": "false",
        "student.unsup_box_loss": "false",
        "student.box_threshold": "0.7",
    },
    "onehot_no_mask_no_box": {
        "student.pseudo_labels": "onehot",
        "student.unsup_mask_loss": "false",
        "student.unsup_box_loss": "false",
    },
    "soft_no_mask_no_box": {
        "student.pseudo_labels": "soft",
        "student.unsup_mask_loss": "false",
        "student.unsup_box_loss": "false",
    },
    "literal_eq5_no_mask_no_box": {
        "student.support": "all",
        "student.unsup_mask_loss": "false",
        "student.unsup_box_loss": "false",
    },
}
#: The first 2026-11-30 recipe (no unsupervised mask or box loss, τ = 0.5, the peers' strong view),
#: with one key changed; _KEPT adds the colour-keeping strong view shipped since (D61).
_SHIPPED = {
    "student.unsup_mask_loss": "false",
    "student.unsup_box_loss": "false",
    "student.box_threshold": "0.5",
}
_KEPT = {
    **_SHIPPED,
    "student.strong_augmentation.hue": "0.0",
    "student.strong_augmentation.grayscale_p": "0.0",
}
_LONG = {"student.max_steps": "480", "train.max_steps": "480"}
_POOL = {"data.image_root": "{pool}/images"}
VARIANTS.update(
    {
        "shipped_corrected_threshold": {**_SHIPPED, "student.threshold_on": "corrected"},
        "shipped_w2": {**_SHIPPED, "student.unsup_weight": "2.0"},
        "shipped_unlabeled8": {**_SHIPPED, "student.unlabeled_batch_size": "8"},
        "shipped_soft": {**_SHIPPED, "student.pseudo_labels": "soft"},
        "shipped_onehot": {**_SHIPPED, "student.pseudo_labels": "onehot"},
        "shipped_renormalize": {**_SHIPPED, "student.renormalize": "true"},
        # The strong view without the photometric ops that change colour (hue shift, grayscale).
        "shipped_colour_kept": _KEPT,
        "colour_kept_onehot": {**_KEPT, "student.pseudo_labels": "onehot"},
        "colour_kept_soft": {**_KEPT, "student.pseudo_labels": "soft"},
        "colour_kept_ema": {**_KEPT, "student.teacher": "ema", "student.teacher_momentum": "0.99"},
        "colour_kept_w2": {**_KEPT, "student.unsup_weight": "2.0"},
        "shipped_ema": {**_SHIPPED, "student.teacher": "ema", "student.teacher_momentum": "0.99"},
        "colour_kept_unlabeled8": {**_KEPT, "student.unlabeled_batch_size": "8"},
        # τ on the teacher's foreground mass (top-k row sum): boxes the teacher is sure are
        # objects but unsure of the class (rare look-alikes) are kept, their rows soft.
        "colour_kept_fg0.7": {**_KEPT, "student.threshold_on": "foreground", "student.box_threshold": "0.7"},
        # 4x the student's steps, and the control of that schedule (w = 0): does the gain grow with
        # the unlabeled images seen (120 steps x 4 = 480 of the pool), or is it the extra steps?
        "long_control": {**_KEPT, **_LONG, "student.unsup_weight": "0.0"},
        "long_colour_kept": {**_KEPT, **_LONG},
        "long_colour_kept_soft": {**_KEPT, **_LONG, "student.pseudo_labels": "soft"},
        "long_colour_kept_onehot": {**_KEPT, **_LONG, "student.pseudo_labels": "onehot"},
        # Issue 13: the shipped student on the images `tailteacher mine` picked from a world-like pool
        # (POOL/mined.json), and on a random sample of that pool of the same size (POOL/random.json).
        # POOL (--pool-dir) is a `synth --pool-images` folder whose train/val equal the run's data.
        # Teacher boxes scoring in [0.1, τ) add no loss instead of being taught as background: the
        # objects a label-scarce teacher half-sees (mostly rare ones) are not suppressed.
        "colour_kept_ignore0.1": {**_KEPT, "student.ignore_threshold": "0.1"},
        "colour_kept_ignore0.05": {**_KEPT, "student.ignore_threshold": "0.05"},
        # Δ shrunk toward its frequency group's pooled Δ, (n_c Δ_c + κ Δ_g) / (n_c + κ), κ = 10
        # held-out detections: Eq. 4 from 1–3 detections of a class is noise (±0.5).
        "colour_kept_shrunk10": {**_KEPT, "student.delta": "{run}/calibration/delta_shrunk10.safetensors"},
        "colour_kept_shrunk10_ignore0.1": {
            **_KEPT,
            "student.delta": "{run}/calibration/delta_shrunk10.safetensors",
            "student.ignore_threshold": "0.1",
        },
        "colour_kept_shrunk10_ignore0.02": {
            **_KEPT,
            "student.delta": "{run}/calibration/delta_shrunk10.safetensors",
            "student.ignore_threshold": "0.02",
        },
        "long_shrunk10_ignore0.1": {
            **_KEPT,
            **_LONG,
            "student.delta": "{run}/calibration/delta_shrunk10.safetensors",
            "student.ignore_threshold": "0.1",
        },
        "mined_pool": {**_KEPT, **_POOL, "data.unlabeled_json": "{pool}/mined.json"},
        "random_pool": {**_KEPT, **_POOL, "data.unlabeled_json": "{pool}/random.json"},
    }
)
# 2026-12-01, fifth session (docs/results.md): the students of each seed's one-hot teacher
# (RUN_DIR/teacher_onehot, `train-teacher --set targets.kind=onehot` then `calibrate`), whose Δ
# has the paper's Fig. 3 shape; the control starts from the same teacher. And w = 2 on seed 0.
_ONEHOT_TEACHER = {
    **_KEPT,
    **_LONG,
    "student.ignore_threshold": "0.1",
    "student.teacher_checkpoint": "{run}/teacher_onehot/model_final.safetensors",
    "student.delta": "{run}/teacher_onehot/calibration/delta.safetensors",
}
VARIANTS.update(
    {
        # At w = 0 the teacher is not run, so the pseudo-label keys do not matter (the measured
        # control ran with pseudo_labels: soft and no ignore band; same steps, same batches).
        "onehot_teacher_control": {**_ONEHOT_TEACHER, "student.unsup_weight": "0.0"},
        "onehot_teacher_soft": {**_ONEHOT_TEACHER, "student.pseudo_labels": "soft"},
        "onehot_teacher_calibrated": _ONEHOT_TEACHER,
        "onehot_teacher_corrected": {**_ONEHOT_TEACHER, "student.threshold_on": "corrected"},
        # seed 0's calibration predates D100: its Δ shrunk outside the code (same formula)
        "long_ignore0.1_w2_s0": {
            **_KEPT,
            **_LONG,
            "student.delta": "{run}/calibration/delta_shrunk10.safetensors",
            "student.delta_shrinkage": "0",
            "student.ignore_threshold": "0.1",
            "student.unsup_weight": "2.0",
        },
    }
)
POOL_DIR: Path | None = None  # --pool-dir
COLUMNS = ("AP", "APr", "APc", "APf", "AP50", "AP75", "boxAP", "ECE", "boxes/img")


def row(folder: Path) -> dict[str, float | None]:
    """The table's columns for one trained model folder (val_metrics.json, student.json, ECE)."""
    metrics = json.loads((folder / "val_metrics.json").read_text())
    mask = metrics["metrics"]
    out: dict[str, float | None] = {k: 100 * mask[k] for k in ("AP", "APr", "APc", "APf", "AP50", "AP75")}
    out["boxAP"] = 100 * metrics["bbox_metrics"]["AP"]
    ece_file = folder / "val_calibration" / "calibration.json"
    out["ECE"] = json.loads(ece_file.read_text())["ece"]["all"] if ece_file.is_file() else None
    summary = json.loads((folder / "student.json").read_text()) if (folder / "student.json").is_file() else {}
    out["boxes/img"] = summary.get("pseudo_boxes_per_unlabeled_image")
    return out


def train(run_dir: Path, name: str, overrides: dict[str, str], extra: list[str], threads: int) -> str:
    out = run_dir / "recipe" / name
    if (out / "student.json").is_file():
        return f"{name}: done already"
    sets = {**BASE, **overrides, "run.run_dir": str(out), "run.resume": "true"}
    # The variants were measured with the per-mode τ of before D121 (onehot 0.5, soft and
    # calibrated 0.3) wherever they do not name one; keep that meaning.
    if "student.box_threshold" not in sets:
        sets["student.box_threshold"] = "0.5" if sets["student.pseudo_labels"] == "onehot" else "0.3"
    sets = {k: v.replace("{run}", str(run_dir)) for k, v in sets.items()}
    if any("{pool}" in v for v in sets.values()):
        if POOL_DIR is None:
            return f"{name}: needs --pool-dir"
        sets = {k: v.replace("{pool}", str(POOL_DIR)) for k, v in sets.items()}
    cmd = [sys.executable, "-m", "tailteacher", "train-student", str(run_dir / "control" / "config.yaml")]
    cmd += [f"--set={k}={v}" for k, v in sets.items()] + [f"--set={s}" for s in extra]
    if "student.delta" not in sets:  # a variant may name another Δ file ({run}: RUN_DIR)
        cmd.append(f"--set=student.delta={run_dir / 'calibration' / 'delta.safetensors'}")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.log", "w") as log:
        proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        return f"{name}: FAILED (exit {proc.returncode}), see {out / 'train.log'}"
    ece = subprocess.run(
        [
            *(sys.executable, "-m", "tailteacher", "calibration", "--gt", _val_json(run_dir)),
            *("--results", str(out / "val_results.json"), "--out", str(out / "val_calibration")),
        ],
        env=env,
        capture_output=True,
        check=False,
    )
    return f"{name}: trained" + ("" if ece.returncode == 0 else " (ECE failed)")


def _val_json(run_dir: Path) -> str:
    import yaml

    config: dict[str, Any] = yaml.safe_load((run_dir / "control" / "config.yaml").read_text())
    return str(config["data"]["val_json"])


def fmt(v: float | None, key: str) -> str:
    if v is None:
        return "-"
    return f"{v:+.3f}" if key == "ECE" and v < 0 else (f"{v:.3f}" if key == "ECE" else f"{v:.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch threads per job (default 2 // jobs)")
    p.add_argument("--only", nargs="*", default=None, help="variant names (default: all)")
    p.add_argument("--set", dest="extra", action="append", default=[], help="applied to every variant")
    p.add_argument("--pool-dir", type=Path, default=None, help="for mined_pool / random_pool (see VARIANTS)")
    args = p.parse_args()
    global POOL_DIR
    POOL_DIR = args.pool_dir
    names = args.only or list(VARIANTS)
    threads = args.threads or max(1, 2 // args.jobs)
    with ThreadPoolExecutor(args.jobs) as pool:
        for message in pool.map(lambda n: train(args.run_dir, n, VARIANTS[n], args.extra, threads), names):
            print(message, flush=True)
    rows = {"control": row(args.run_dir / "control")}
    rows["teacher"] = row(args.run_dir / "teacher")
    for name in VARIANTS:
        if (args.run_dir / "recipe" / name / "student.json").is_file():
            rows[name] = row(args.run_dir / "recipe" / name)
    control = rows["control"]
    lines = [
        "| model | " + " | ".join(COLUMNS) + " | ΔAP | ΔAPr | ΔAP75 | ΔboxAP |",
        "|---|" + "---:|" * (len(COLUMNS) + 4),
    ]
    for name, r in rows.items():
        deltas = [
            fmt(None if r[k] is None or control[k] is None else r[k] - control[k], k)  # type: ignore[operator]
            for k in ("AP", "APr", "AP75", "boxAP")
        ]
        lines.append(
            f"| {name} | " + " | ".join(fmt(r[k], k) for k in COLUMNS) + " | " + " | ".join(deltas) + " |"
        )
    table = "\n".join(lines)
    (args.run_dir / "recipe").mkdir(exist_ok=True)
    (args.run_dir / "recipe" / "recipe.md").write_text(table + "\n")
    (args.run_dir / "recipe" / "recipe.json").write_text(json.dumps(rows, indent=2))
    print(table)


if __name__ == "__main__":
    main()
