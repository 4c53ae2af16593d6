"""Paired, per-seed differences of finished runs: the issue-9 targets from several seeds of `run`.

    python benchmarks/seed_table.py RUN_DIR [RUN_DIR ...] [--out FILE.md]

Each RUN_DIR is one seed: a finished ``tailteacher run`` folder (``teacher/``, ``control/``,
``student/``), optionally with ``benchmarks/student_recipe.py`` variants in ``recipe/`` and a
uniform-smoothing teacher of the same seed and split in the sibling folder ``RUN_DIR_uniform``
(``tailteacher train-teacher RUN_DIR/teacher/config.yaml --set targets.kind=uniform``). Rows:

- the calibrated student: ``recipe/shipped_colour_kept`` when it exists (the shipped recipe run
  from a run made before it was shipped), else ``student/``;
- ``recipe/colour_kept_soft`` and ``recipe/colour_kept_onehot`` (soft and one-hot pseudo-labels,
  otherwise the same student) when they exist.

Prints AP / APr / APc / APf / ECE per seed and model, then each paired difference per seed with
its mean and sample standard deviation over the seeds that have it: student − control, soft −
one-hot, calibrated − soft, the teacher's similarity − uniform, and ECE student − teacher.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

METRICS = ("AP", "APr", "APc", "APf", "ECE")


def model_row(folder: Path) -> dict[str, float] | None:
    """AP … in points and ECE of a trained model folder; None when it has no val metrics."""
    file = folder / "val_metrics.json"
    if not file.is_file():
        return None
    mask = json.loads(file.read_text())["metrics"]
    row = {k: 100 * float(mask[k]) for k in ("AP", "APr", "APc", "APf")}
    ece = folder / "val_calibration" / "calibration.json"
    row["ECE"] = float(json.loads(ece.read_text())["ece"]["all"]) if ece.is_file() else float("nan")
    return row


def seed_models(run_dir: Path) -> dict[str, dict[str, float]]:
    """The rows one seed has, by name."""
    recipe = run_dir / "recipe"
    candidates = {
        "teacher": run_dir / "teacher",
        "teacher (uniform smoothing)": run_dir.with_name(run_dir.name + "_uniform"),
        "control": run_dir / "control",
        "student (calibrated)": (
            recipe / "shipped_colour_kept"
            if (recipe / "shipped_colour_kept").is_dir()
            else run_dir / "student"
        ),
        "student (soft)": recipe / "colour_kept_soft",
        "student (one-hot)": recipe / "colour_kept_onehot",
    }
    rows = {name: model_row(folder) for name, folder in candidates.items()}
    return {name: row for name, row in rows.items() if row is not None}


PAIRS = (
    ("calibrated student − control", "student (calibrated)", "control"),
    ("soft − one-hot student", "student (soft)", "student (one-hot)"),
    ("calibrated − soft student", "student (calibrated)", "student (soft)"),
    ("teacher: similarity − uniform", "teacher", "teacher (uniform smoothing)"),
    ("calibrated student − teacher", "student (calibrated)", "teacher"),
)


def fmt(value: float, key: str) -> str:
    if value != value:  # NaN: not measured
        return "–"
    return f"{value:+.3f}" if key == "ECE" else f"{value:+.1f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dirs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    seeds = {str(d): seed_models(d) for d in args.run_dirs}
    lines = ["| seed run | model | " + " | ".join(METRICS) + " |", "|---|---|" + "---:|" * len(METRICS)]
    for run, models in seeds.items():
        for name, row in models.items():
            cells = " | ".join(
                "–" if row[k] != row[k] else f"{row[k]:.3f}" if k == "ECE" else f"{row[k]:.1f}"
                for k in METRICS
            )
            lines.append(f"| {run} | {name} | {cells} |")
    lines += [
        "",
        "| paired difference | " + " | ".join(METRICS) + " | seeds |",
        "|---|" + "---:|" * (len(METRICS) + 1),
    ]
    for label, a, b in PAIRS:
        diffs = {k: [m[a][k] - m[b][k] for m in seeds.values() if a in m and b in m] for k in METRICS}
        n = len(diffs["AP"])
        if n == 0:
            continue
        cells = []
        for k in METRICS:
            per_seed = ", ".join(fmt(v, k) for v in diffs[k])
            known = [v for v in diffs[k] if v == v]  # NaN: not measured for that seed (e.g. its ECE)
            mean = statistics.fmean(known) if known else float("nan")
            std = statistics.stdev(known) if len(known) > 1 else float("nan")
            spread = "" if std != std else f" ± {abs(std):.{3 if k == 'ECE' else 1}f}"
            cells.append(f"{fmt(mean, k)}{spread} ({per_seed})")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {n} |")
    table = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
