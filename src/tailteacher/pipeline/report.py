"""The pipeline's report: ``report.md`` and ``report.json`` in the run folder, rewritten each run."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..engine.config import Config
from ..engine.config_io import config_hash
from ..io import atomic_write_bytes, atomic_write_json
from .stages import StageOutcome


def _rel(path: Path, root: Path) -> str:
    return os.path.relpath(path, root)


def write_report(
    root: Path,
    config: Config,
    models: Mapping[str, StageOutcome],
    stages: Sequence[StageOutcome],
    calibration: StageOutcome | None,
) -> Path:
    """Write ``root/report.md`` (table, calibration, plots, stage times) and ``root/report.json``;
    ``models`` names the table's rows and the training stages they come from."""
    from .run import format_table, model_rows

    rows = model_rows(models)
    lines = [
        "# tailteacher run report",
        "",
        f"Config hash `{config_hash(config)[:12]}` (resolved configs in the training stages' `config.yaml`).",
        f"Evaluated on `{config.data.val_json}`: mask AP in points (LVIS, 300 detections per image),",
        "ECE of the detections' scores matched at IoU ≥ 0.5 (10 bins).",
        "",
        format_table(rows),
        "",
    ]
    if calibration is not None:
        ece = calibration.result.get("heldout_ece", {})
        shown = ", ".join(f"{g} {v:.3f}" for g, v in ece.items() if v is not None)
        lines += [
            "## Teacher calibration on the held-out split (Eq. 4)",
            "",
            f"ECE: {shown}. Δ per class: `{_rel(calibration.folder / 'calibration.json', root)}`.",
            "",
        ]
    plots = [
        ("teacher, held-out", calibration.folder / "reliability_all.png" if calibration else None),
        *(
            (f"{name}, val", m.folder / "val_calibration" / "reliability_all.png")
            for name, m in models.items()
        ),
    ]
    shown_plots = [(label, p) for label, p in plots if p is not None and p.is_file()]
    if shown_plots:
        lines += ["## Reliability diagrams", ""]
        lines += [f"- {label}: `{_rel(p, root)}`" for label, p in shown_plots]
        lines.append("")
    lines += ["## Stages", "", "| stage | folder | seconds | |", "|---|---|---:|---|"]
    for s in stages:
        note = "skipped (done)" if s.skipped else ""
        lines.append(f"| {s.name} | `{_rel(s.folder, root)}` | {s.seconds:.0f} | {note} |")
    lines.append("")
    md = root / "report.md"
    atomic_write_bytes(md, "\n".join(lines).encode("utf-8"))
    payload: dict[str, Any] = {
        "config_hash": config_hash(config),
        "rows": {k: dict(v) for k, v in rows.items()},
        "heldout_ece": calibration.result.get("heldout_ece") if calibration else None,
        "stages": [
            {"name": s.name, "folder": _rel(s.folder, root), "seconds": s.seconds, "skipped": s.skipped}
            for s in stages
        ],
    }
    atomic_write_json(root / "report.json", payload, indent=2)
    return md
