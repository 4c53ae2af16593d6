"""Paired per-seed differences of trained models from a reference model (the control).

    python benchmarks/paired_table.py --ref control runs/f25_s0/control runs/f25_s1/control \\
        --row student runs/f25_s0/student runs/f25_s1/student [--row NAME DIR...] [--out table.md]

Every ``--ref``/``--row`` names a model and one folder per seed (same order in every row): a folder
with ``val_metrics.json`` (a teacher, control or student folder of ``tailteacher run``, or a
``student_recipe.py`` variant). For each row it prints mask AP / APr / APc / APf and ECE (from
``val_calibration/calibration.json`` when present) per seed, then each row's difference from the
reference per seed, their mean ± sample standard deviation (n − 1) and the paired t statistic
mean / (sd / √n) (with 3 seeds, |t| > 4.3 is p < 0.05 two-sided). Rows missing a folder are
reported, not guessed.

Two more columns split APr by what the model was trained on (its ``config.yaml``'s
``data.train_json``): "APr seen", the mean AP of the rare classes with at least one training
image, and "APr 0-shot", of those with none (a labeled fraction can leave a rare class without a
labeled image; D116). "-" where the folder has no config or per-class AP.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import yaml

KEYS = ("AP", "APr", "APc", "APf")
RARE = ("APr seen", "APr 0-shot")
COLUMNS = (*KEYS, *RARE)


def rare_split(folder: Path, per_category: list[dict[str, Any]]) -> dict[str, float]:
    """{"APr seen", "APr 0-shot"}: mean AP in points of the rare classes with ≥ 1 / 0 images in the
    model's training json (``folder/config.yaml``'s ``data.train_json``); {} without a config."""
    config = folder / "config.yaml"
    if not config.is_file():
        return {}
    train_json = yaml.safe_load(config.read_text())["data"]["train_json"]
    train = json.loads(Path(train_json).read_text())
    trained = {a["category_id"] for a in train["annotations"]}
    groups: dict[str, list[float]] = {k: [] for k in RARE}
    for c in per_category:
        if c.get("frequency") == "r" and c.get("AP") is not None and c["AP"] >= 0:
            groups[RARE[0] if c["id"] in trained else RARE[1]].append(100 * c["AP"])
    return {k: statistics.fmean(v) for k, v in groups.items() if v}


def metrics(folder: Path) -> dict[str, float] | None:
    """Mask AP/APr/APc/APf in points, the rare split and ECE, or None without val_metrics.json."""
    file = folder / "val_metrics.json"
    if not file.is_file():
        return None
    payload = json.loads(file.read_text())
    mask = payload["metrics"]
    out = {k: 100 * mask[k] for k in KEYS}
    out.update(rare_split(folder, payload.get("per_category", [])))
    ece = folder / "val_calibration" / "calibration.json"
    if ece.is_file():
        value = json.loads(ece.read_text())["ece"].get("all")
        if value is not None:  # None: no detection to measure
            out["ECE"] = value
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def table(ref_name: str, ref: list[Path], rows: dict[str, list[Path]]) -> str:
    """The per-seed table and the summary of each row's paired differences from ``ref``."""
    names = " | ".join(COLUMNS)
    head = f"| model | seed | {names} | ECE | − {ref_name} {names} |"
    lines = [head, "|---|---:|" + "---:|" * (2 * len(COLUMNS) + 1)]
    summary = [
        "",
        f"| model − {ref_name} | n | {names} | ECE (n) |",
        "|---|---:|" + "---:|" * (len(COLUMNS) + 1),
    ]
    ref_m = [metrics(f) for f in ref]
    for name, folders in {ref_name: ref, **rows}.items():
        is_ref = folders is ref
        diffs: dict[str, list[float]] = {k: [] for k in (*COLUMNS, "ECE")}
        for seed, folder in enumerate(folders):
            m, r = metrics(folder), ref_m[seed] if seed < len(ref_m) else None
            if m is None:
                lines.append(f"| {name} | {seed} | missing: {folder} |" + "|" * (2 * len(COLUMNS)))
                continue
            cells = [f"{m[k]:.1f}" if k in m else "-" for k in COLUMNS]
            cells.append(f"{m['ECE']:.3f}" if "ECE" in m else "-")
            if r is not None and not is_ref:
                for k in (*COLUMNS, "ECE"):
                    if k in m and k in r:
                        diffs[k].append(m[k] - r[k])
                cells += [f"{m[k] - r[k]:+.1f}" if k in m and k in r else "-" for k in COLUMNS]
            else:
                cells += [""] * len(COLUMNS)
            lines.append(f"| {name} | {seed} | " + " | ".join(cells) + " |")
        if not is_ref and diffs["AP"]:
            parts = []
            for k in (*COLUMNS, "ECE"):
                if not diffs[k]:
                    parts.append("-")
                    continue
                mu, sd = mean_std(diffs[k])
                if k == "ECE":
                    parts.append(f"{mu:+.3f} ± {sd:.3f} ({len(diffs[k])})")
                    continue
                n = len(diffs[k])
                t = f", t = {mu / (sd / n**0.5):+.1f}" if sd > 0 else ""
                parts.append(f"{mu:+.1f} ± {sd:.1f}{t}")
            summary.append(f"| {name} | {len(diffs['AP'])} | " + " | ".join(parts) + " |")
    return "\n".join(lines + summary)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref", nargs="+", required=True, metavar=("NAME", "DIR"), help="name, folders")
    p.add_argument("--row", nargs="+", action="append", default=[], metavar=("NAME", "DIR"))
    p.add_argument("--out", type=Path, default=None, help="also write the table here (markdown)")
    args = p.parse_args()
    if len(args.ref) < 2 or any(len(r) < 2 for r in args.row):
        p.error("--ref and every --row need a name and at least one folder")
    names = [args.ref[0], *(r[0] for r in args.row)]
    if len(set(names)) < len(names):
        p.error(f"names must differ: {names}")
    ref = [Path(f) for f in args.ref[1:]]
    rows = {r[0]: [Path(f) for f in r[1:]] for r in args.row}
    text = table(args.ref[0], ref, rows)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
