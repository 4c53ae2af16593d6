"""The run's markdown report: its table (one row per trained model: AP, APr, APc, APf in points and
ECE), and ``report.md`` / ``report.json`` in the run folder, rewritten each run."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import Config
from ..engine.config_files import config_hash
from ..io import atomic_write_bytes, atomic_write_json
from ..pipeline.stages import StageOutcome

#: The columns of the pipeline's and the ablation's tables, in order.
METRICS = ("AP", "APr", "APc", "APf", "ECE")


def table_row(metrics: Mapping[str, float], ece: Mapping[str, float | None]) -> dict[str, float | None]:
    """AP, APr, APc, APf in points (LVIS's -1 for an empty group → None) and ECE overall."""
    row: dict[str, float | None] = {}
    for k in METRICS[:-1]:
        v = metrics.get(k, -1.0)
        row[k] = None if v is None or v < 0 else 100.0 * float(v)
    row["ECE"] = ece.get("all")
    return row


def result_row(result: Mapping[str, Any]) -> dict[str, float | None]:
    """The table row of a training stage's recorded result (its ``metrics`` and ``val_ece``)."""
    return table_row(result["metrics"], result["val_ece"])


def format_table(rows: Mapping[str, Mapping[str, Any]], first: str = "model") -> str:
    """A markdown table: one line per row, the ``METRICS`` columns; a value may be a number,
    None ("-") or a ``(mean, std)`` pair ("mean ± std")."""

    def cell(key: str, v: Any) -> str:
        digits = 3 if key == "ECE" else 1
        if v is None:
            return "-"
        if isinstance(v, tuple | list):
            mean, std = v
            if mean is None:
                return "-"
            return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"
        return f"{v:.{digits}f}"

    width = max([len(first), *(len(r) for r in rows)])
    lines = [
        f"| {first:<{width}} | " + " | ".join(METRICS) + " |",
        f"|{'-' * (width + 2)}|" + "|".join("---:" for _ in METRICS) + "|",
    ]
    for name, row in rows.items():
        lines.append(f"| {name:<{width}} | " + " | ".join(cell(k, row.get(k)) for k in METRICS) + " |")
    return "\n".join(lines)


def paired_gain(
    student: Mapping[str, float | None], control: Mapping[str, float | None]
) -> dict[str, float | None]:
    """student − control per column of ``METRICS`` (None where either is missing)."""
    out: dict[str, float | None] = {}
    for k in METRICS:
        a, b = student.get(k), control.get(k)
        out[k] = None if a is None or b is None else float(a) - float(b)
    return out


CONTROL = "control (labeled only)"
GAIN = "student − control"
#: The student against the model it learnt from: where the control overfits after the teacher's
#: plateau, student − control alone would count that overfitting as the student's gain (D111).
TEACHER_GAIN = "student − teacher"


def gain_rows(rows: dict[str, dict[str, float | None]]) -> dict[str, dict[str, float | None]]:
    """``rows`` with the student's paired differences from the control and from the teacher added
    (each only where that row and exactly one ``student…`` row exist)."""
    students = [n for n in rows if n.startswith("student") and n not in (GAIN, TEACHER_GAIN)]
    if len(students) != 1:
        return rows
    student = rows[students[0]]
    out = dict(rows)
    if CONTROL in rows:
        out[GAIN] = paired_gain(student, rows[CONTROL])
    if "teacher" in rows:
        out[TEACHER_GAIN] = paired_gain(student, rows["teacher"])
    return out


def model_rows(models: Mapping[str, StageOutcome]) -> dict[str, dict[str, float | None]]:
    """The table's rows of the trained models, and the student's differences from the control and
    the teacher (``gain_rows``)."""
    return gain_rows({name: result_row(outcome.result) for name, outcome in models.items()})


def gain_sentence(rows: Mapping[str, Mapping[str, float | None]]) -> str | None:
    """One line on the student's paired gain over the control (and, where the table has it, over
    its teacher), or None without a control."""
    gain = rows.get(GAIN)
    if gain is None:
        return None
    line = (
        "student − control (same teacher, same steps, labeled images only vs + pseudo-labels): "
        + _differences(gain)
    )
    over_teacher = rows.get(TEACHER_GAIN)
    if over_teacher is not None:
        line += "; student − teacher: " + _differences(over_teacher)
    return line


def _differences(row: Mapping[str, float | None]) -> str:
    parts = [f"{k} {row[k]:+.1f}" for k in ("AP", "APr", "APc", "APf") if row.get(k) is not None]
    if row.get("ECE") is not None:
        parts.append(f"ECE {row['ECE']:+.3f}")
    return ", ".join(parts)


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


def format_metrics(metrics: dict[str, float]) -> str:
    """One line of mask AP figures in points (AP, AP50, AP75, APr, APc, APf; "-" where undefined)."""
    keys = ("AP", "AP50", "AP75", "APr", "APc", "APf")
    return "  ".join(f"{k} {100 * metrics[k]:.1f}" if metrics.get(k, -1) >= 0 else f"{k} -" for k in keys)
