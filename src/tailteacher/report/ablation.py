"""The HTML page of an ablation folder (`tailteacher ablate`): mean ± std over seeds, the paired
differences from the control, Fig. 2, and Figs. 3–5 and the per-class table of one seed's
calibrated student and its teacher."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError
from . import figures
from .run_data import RunData, load_models, read_json, teacher_of
from .sections import data_uri, run_context, table_section

#: The rows Figs. 3–5 show: the calibrated student as `run` ships it (Eq. 5 on the teacher's
#: top-k classes, D51; the literal row is in the tables, D113), its control, and its teacher.
STUDENT_ROW = "student_calibrated_topk"
CONTROL_ROW = "student_labeled"


def row_labels() -> dict[str, str]:
    """Row key → the ablation table's label (``pipeline.ablation``'s rows)."""
    from ..pipeline.ablation import STUDENT_ROWS, TEACHER_ROWS

    return {r.key: r.label for r in (*TEACHER_ROWS, *STUDENT_ROWS)}


def split_key(key: str) -> tuple[str, float]:
    """``"sim_g15@0.5"`` → ``("sim_g15", 0.5)``."""
    row, _, fraction = key.rpartition("@")
    return row, float(fraction)


def fraction_curves(summary: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[float, Mapping[str, Any]]]:
    """{row: {fraction: metrics}} for the rows run at a fraction < 1 (with their full-label point)."""
    curves: dict[str, dict[float, Mapping[str, Any]]] = {}
    for key, metrics in summary.items():
        row, f = split_key(key)
        curves.setdefault(row, {})[f] = metrics
    return {row: points for row, points in sorted(curves.items()) if any(f < 1 for f in points)}


def seed_models(root: Path, seeds: list[int]) -> RunData | None:
    """The calibrated student of the first seed that has one, its control and its teacher."""
    for seed in seeds:
        full = root / f"seed{seed}" / "full"
        student = full / STUDENT_ROW
        if (student / "val_metrics.json").is_file():
            teacher = teacher_of(student) or full / "teacher_sim_g15"
            if (teacher / "val_metrics.json").is_file():
                run = load_models(root, teacher, full / CONTROL_ROW, student)
                run.extra["seed"] = seed
                return run
    return None


def ablation_context(root: Path) -> dict[str, Any]:
    """Everything ``report.html.j2`` shows of an ablation folder."""
    payload = read_json(root / "ablation.json")
    if not isinstance(payload, dict) or "summary" not in payload:
        raise InputError(
            f"{root / 'ablation.json'}: not the ablation.json of `tailteacher ablate` (no summary)"
        )
    labels = row_labels()
    summary: dict[str, Any] = payload["summary"]
    meta = payload.get("meta", {})
    seeds = [int(s) for s in meta.get("seeds", [])] or [int(s) for s in payload.get("per_seed", {})]

    def name(key: str) -> str:
        row, f = split_key(key)
        label = labels.get(row, row)
        return label if f == 1 else f"{label}, {100 * f:g} % of the labels"

    full = {
        name(k): {m: tuple(v) for m, v in ms.items()} for k, ms in summary.items() if split_key(k)[1] == 1
    }
    paired = {
        name(k): {m: tuple(v) for m, v in ms.items()}
        for k, ms in payload.get("paired_with_control", {}).items()
    }
    curves = fraction_curves(summary)
    if curves:
        png = figures.fraction_curves({labels.get(r, r): pts for r, pts in curves.items()})
        fractions = {
            "uri": data_uri(png),
            "caption": f"mean ± sample std over seeds {seeds}; the 100 % point is the row's full-label run",
            "missing": None,
        }
    else:
        fractions = {
            "uri": None,
            "caption": "",
            "missing": "This ablation ran no label fraction below 100 %.",
        }
    run = seed_models(root, seeds)
    if run is not None:
        context = run_context(run)
        where = f"seed {run.extra['seed']}: {run.student.folder if run.student else ''}"
    else:
        context = run_context_without_models(root)
        where = "no seed has a finished calibrated student with its teacher"
    context.update(
        kind="ablation",
        title=f"tailteacher ablation: {root.name}",
        root=str(root),
        table=table_section(full),
        gain=None,
        paired=table_section(paired) if paired else None,
        comparisons=_comparisons(payload.get("comparisons")),
        fractions=fractions,
        ablation_intro=(
            f"Seeds {seeds}; mean ± sample std over seeds (one seed: no std). Mask AP in points on val "
            f"(LVIS rules); ECE of the detections matched at IoU ≥ 0.5, 10 bins. Command: "
            f"{meta.get('command', '–')}; machine: {meta.get('machine', '–')}. Figs. 3–5 and the per-class "
            f"table below show one seed ({where})."
        ),
    )
    return context


def _comparisons(comparisons: Any) -> dict[str, Any] | None:
    """The paired comparisons' table (columns and rows), None for an ablation.json without them."""
    from ..pipeline.paired import comparison_cells

    if not comparisons:
        return None
    columns, rows = comparison_cells(comparisons)
    return {"columns": columns, "rows": rows}


def run_context_without_models(root: Path) -> dict[str, Any]:
    """The per-model sections of a page with no model to show, each saying so."""
    from .markdown import METRICS
    from .sections import GROUP_LABELS, versions

    missing = "No finished calibrated student with its teacher in this folder."
    return {
        "versions": versions(),
        "config_name": "",
        "config_text": None,
        "metrics": list(METRICS),
        "val_json": None,
        "groups": list(GROUP_LABELS.values()),
        "ece": [],
        "reliability": {"models": [], "missing": missing},
        "frequency": {"images": [], "missing": missing},
        "examples": {"intro": "", "items": [], "missing": missing},
        "pseudo": {"facts": [], "quality": None, "missing": missing},
        "per_class": [],
        "has_student": False,
    }
