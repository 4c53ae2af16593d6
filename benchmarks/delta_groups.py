"""The sign and size of a teacher's calibration error Δ per LVIS frequency group.

    python benchmarks/delta_groups.py CALIBRATION_JSON... [--kappa 10]

Each CALIBRATION_JSON is a ``calibration.json`` written by ``tailteacher calibrate`` (its
``categories``: id, frequency, num_detections, delta). For each file it prints, per group r/c/f,
the mean, minimum and maximum of Δ shrunk toward the group's pooled Δ with strength κ (the
student's ``delta_shrinkage``, D100; ``--kappa 0`` gives Eq. 4 as measured) and how many classes
are overconfident (Δ < 0). The paper's Fig. 3 premise is frequent classes overconfident and rare
ones underconfident; where Δ has one sign in every group, Eq. 5 is close to a uniform lift.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from tailteacher.labels.ccece import shrink_ccece

GROUPS = {"r": 0, "c": 1, "f": 2}


def group_summary(categories: list[dict[str, Any]], kappa: float) -> dict[str, dict[str, float]]:
    """Per group: mean / min / max of the shrunk Δ, the number of classes and of negative Δ.
    A class without held-out detections (Δ null) counts as Δ = 0 with n = 0, as the student does."""
    delta = torch.tensor([float(c["delta"] or 0.0) for c in categories], dtype=torch.float64)
    count = torch.tensor([float(c["num_detections"]) for c in categories], dtype=torch.float64)
    group = torch.tensor([GROUPS[str(c["frequency"])] for c in categories])
    shrunk = shrink_ccece(delta, count, group, kappa)
    out: dict[str, dict[str, float]] = {}
    for name, g in GROUPS.items():
        v = shrunk[group == g]
        if len(v):
            out[name] = {
                "mean": float(v.mean()),
                "min": float(v.min()),
                "max": float(v.max()),
                "classes": len(v),
                "negative": int((v < 0).sum()),
            }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--kappa", type=float, default=10.0, help="κ of D100 (default 10, the student's)")
    args = p.parse_args()
    for file in args.files:
        summary = group_summary(json.loads(file.read_text())["categories"], args.kappa)
        cells = [
            f"{g} {s['mean']:+.3f} [{s['min']:+.3f}, {s['max']:+.3f}] Δ<0 in {s['negative']}/{s['classes']}"
            for g, s in summary.items()
        ]
        print(f"{file}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
