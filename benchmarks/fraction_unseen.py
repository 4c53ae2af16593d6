"""Rare-class mask AP of an ablation's Fig. 2 teachers, split by whether the class has a labeled
image in the fraction's subset: what label smoothing gives classes the teacher never saw.

    python benchmarks/fraction_unseen.py ABLATION_DIR [--rows onehot sim_g15]

ABLATION_DIR is a `tailteacher ablate` folder with `--part fractions` finished
(`seed{S}/fraction{F}/data/train.json` and `seed{S}/fraction{F}/teacher_{row}/val_metrics.json`).
Per fraction, seed and row: the number of rare classes with and without a labeled image in the
subset and their mean AP on val (classes with val objects only), then the mean over seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def rare_ap_by_seen(subset_json: Path, val_metrics: Path) -> tuple[list[float], list[float]]:
    """(AP in points of the rare classes with a labeled image in the subset, of those without)."""
    labeled = {a["category_id"] for a in json.loads(subset_json.read_text())["annotations"]}
    per_class = json.loads(val_metrics.read_text())["per_category"]
    rare = [c for c in per_class if c["frequency"] == "r" and c["num_gt"] > 0 and c["AP"] is not None]
    seen = [100 * c["AP"] for c in rare if c["id"] in labeled]
    unseen = [100 * c["AP"] for c in rare if c["id"] not in labeled]
    return seen, unseen


def mean(xs: list[float]) -> str:
    return f"{statistics.fmean(xs):.1f}" if xs else "-"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ablation_dir", type=Path)
    parser.add_argument(
        "--rows", nargs="+", default=["onehot", "sim_g15"], help="teacher rows (default both)"
    )
    args = parser.parse_args()
    root: Path = args.ablation_dir
    print(
        "| fraction | seed | teacher | rare with labels: n, AP | rare without: n, AP |\n|---|---|---|---|---|"
    )
    overall: dict[tuple[str, str], list[tuple[list[float], list[float]]]] = {}
    for fraction_dir in sorted(root.glob("seed*/fraction*")):
        seed = fraction_dir.parent.name.removeprefix("seed")
        fraction = fraction_dir.name.removeprefix("fraction")
        for row in args.rows:
            metrics = fraction_dir / f"teacher_{row}" / "val_metrics.json"
            if not metrics.is_file():
                continue
            seen, unseen = rare_ap_by_seen(fraction_dir / "data" / "train.json", metrics)
            overall.setdefault((fraction, row), []).append((seen, unseen))
            print(
                f"| {fraction} | {seed} | {row} | {len(seen)}, {mean(seen)} | {len(unseen)}, {mean(unseen)} |"
            )
    print("\nmean over seeds (of each seed's class mean):")
    for (fraction, row), runs in sorted(overall.items()):
        seen_means = [statistics.fmean(s) for s, _ in runs if s]
        unseen_means = [statistics.fmean(u) for _, u in runs if u]
        print(
            f"  fraction {fraction} {row}: with labels {mean(seen_means)}, "
            f"without {mean(unseen_means)} ({len(runs)} seeds)"
        )


if __name__ == "__main__":
    main()
