"""The sections of a run's HTML page, as plain data for the template.

Every figure is a ``data:image/png;base64,…`` URI (the page is one file); a section the run has
no data for carries a ``missing`` sentence saying what is missing, never a placeholder figure.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import figures
from .examples import by_image, choose_examples
from .per_class import per_class_rows
from .run_data import GROUPS, ModelRun, RunData, read_json

GROUP_LABELS = {"all": "all", "r": "rare", "c": "common", "f": "frequent"}
#: Fig. 5 shows detections with at least this score.
MIN_SCORE = 0.3


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def table_section(rows: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows for the metrics table: name and the cells of AP, APr, APc, APf, ECE as text."""
    from .markdown import METRICS

    def cell(key: str, v: Any) -> str:
        digits = 3 if key == "ECE" else 1
        if isinstance(v, tuple | list):
            mean, std = v
            if mean is None:
                return "–"
            return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")
        return "–" if v is None else f"{v:.{digits}f}"

    return [{"name": name, "cells": [cell(k, row.get(k)) for k in METRICS]} for name, row in rows.items()]


def ece_section(models: list[ModelRun]) -> list[dict[str, Any]]:
    """ECE per frequency group of each model, as text (– where not measured)."""
    return [
        {"name": m.name, "cells": ["–" if m.ece[g] is None else f"{m.ece[g]:.3f}" for g in GROUPS]}
        for m in models
    ]


def reliability_image(model: ModelRun, group: str) -> str | None:
    """Fig. 3 of ``model`` for ``group``: the PNG its evaluation wrote, else drawn from calibration.json."""
    png = model.reliability_png(group)
    if png is not None:
        return data_uri(png.read_bytes())
    reliability = (model.calibration or {}).get("reliability", {}).get(group)
    if reliability is None:
        return None
    title = f"{model.name}: {GROUP_LABELS[group]} categories"
    return data_uri(figures.reliability_from_json(reliability, title=title, ece=model.ece[group]))


def reliability_section(run: RunData) -> dict[str, Any]:
    shown = [m for m in (run.teacher, run.student) if m is not None]
    models = [
        {"name": m.name, "images": [(GROUP_LABELS[g], reliability_image(m, g)) for g in GROUPS]}
        for m in shown
    ]
    missing = None
    if all(img is None for m in models for _, img in m["images"]):
        missing = "No reliability data: the models' val_calibration/ folders are missing."
    elif run.student is None:
        missing = "This run has no student (data.unlabeled_json unset): the teacher alone is shown."
    return {"models": models, "missing": missing}


def frequency_section(run: RunData) -> dict[str, Any]:
    shown = [m for m in (run.teacher, run.student) if m is not None]
    images = [
        (m.name, data_uri(figures.ap_vs_frequency(m.per_category, title=f"{m.name}: AP per category")))
        for m in shown
        if m.per_category
    ]
    return {"images": images, "missing": None if images else "No per-category AP in val_metrics.json."}


def _image_array(path: Path) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def examples_section(run: RunData, count: int = 4, min_score: float = MIN_SCORE) -> dict[str, Any]:
    """Fig. 5: validation images with rare objects where teacher and student differ most."""
    intro = (
        f"Up to {count} validation images with objects of rare categories, chosen where the two "
        "models' highest scores on those objects (same class, box IoU ≥ 0.5) differ most. Each "
        f"panel shows at most {figures.MAX_SHOWN} detections with score ≥ {min_score}."
    )
    if run.student is None:
        return {"intro": intro, "items": [], "missing": "This run has no student to compare with."}
    val_json, root = run.data.get("val_json"), run.data.get("image_root")
    t_path, s_path = run.teacher.results_path, run.student.results_path
    if not val_json or not Path(val_json).is_file() or t_path is None or s_path is None:
        missing = f"Needs the val json ({val_json or 'not in the config'}) and both models' val_results.json."
        return {"intro": intro, "items": [], "missing": missing}
    val = read_json(Path(val_json))
    names = {int(c["id"]): str(c["name"]) for c in val["categories"]}
    rare = {int(c["id"]) for c in val["categories"] if c.get("frequency") == "r"}
    teacher, student = read_json(t_path), read_json(s_path)
    chosen = choose_examples(val["annotations"], rare, teacher, student, count)
    if not chosen:
        return {"intro": intro, "items": [], "missing": "The val json has no object of a rare category."}
    images = {int(i["id"]): i for i in val["images"]}
    truth, t_dets, s_dets = by_image(val["annotations"]), by_image(teacher), by_image(student)
    items, unreadable = [], []
    for ex in chosen:
        record = images[ex.image_id]
        from ..data.lvis_json import image_relpath

        path = Path(root or ".") / image_relpath(record)
        try:
            pixels = _image_array(path)
        except OSError:
            unreadable.append(str(path))
            continue
        png = figures.example(
            pixels,
            truth.get(ex.image_id, []),
            figures.top_detections(t_dets.get(ex.image_id, []), min_score),
            figures.top_detections(s_dets.get(ex.image_id, []), min_score),
            names,
            title=f"image {ex.image_id}: difference {ex.difference:.2f}",
            rare_ids=rare,
        )
        found = [
            {"name": names[int(a["category_id"])], "teacher": f"{t:.2f}", "student": f"{s:.2f}"}
            for a in truth.get(ex.image_id, [])
            if int(a["id"]) in ex.found
            for t, s in [ex.found[int(a["id"])]]
        ]
        items.append({"image_id": ex.image_id, "uri": data_uri(png), "found": found})
    unread = f"Images not readable: {', '.join(unreadable)}" if unreadable else None
    return {"intro": intro, "items": items, "missing": unread}


def per_class_section(run: RunData) -> list[dict[str, Any]]:
    ccece = None
    calibration = run.root / "calibration" / "calibration.json"  # the teacher's Δ on the held-out split
    if calibration.is_file():
        ccece = {int(c["id"]): float(c["delta"]) for c in read_json(calibration).get("categories", [])}
    rows = per_class_rows(run.teacher.per_category, run.student.per_category if run.student else None, ccece)

    def fmt(v: float | None, sign: bool = False) -> str:
        return "–" if v is None else (f"{v:+.1f}" if sign else f"{v:.1f}")

    return [
        {
            **r,
            "text": {
                "ap_teacher": fmt(r["ap_teacher"]),
                "ap_student": fmt(r["ap_student"]),
                "gain": fmt(r["gain"], sign=True),
                "ccece": "–" if r["ccece"] is None else f"{r['ccece']:+.3f}",
            },
        }
        for r in rows
    ]


def _threshold_text(value: Any) -> str:
    """A student config's ``box_threshold`` for the page: null is the mode's default, which D121
    moved (0.3 for soft/calibrated before it, 0.5 in every mode since)."""
    return "null (the mode's default: 0.5 since D121)" if value is None else str(value)


def pseudo_label_section(run: RunData) -> dict[str, Any]:
    """What the student's training recorded of its pseudo-labels, and their measured quality
    against the pool's truth when ``pseudo_labels.json`` was written (``report.pseudo_labels``)."""
    if run.student is None:
        return {"facts": [], "quality": None, "missing": "This run has no student, hence no pseudo-labels."}
    summary, cfg = run.student.summary, run.student.config.get("student") or {}
    facts = [
        ("mode", str(summary.get("pseudo_labels", cfg.get("pseudo_labels", "–")))),
        ("box threshold τ", _threshold_text(cfg.get("box_threshold", "–"))),
        ("unsupervised weight w", str(cfg.get("unsup_weight", "–"))),
    ]
    per_image = summary.get("pseudo_boxes_per_unlabeled_image")
    if per_image is not None:
        facts.append(("pseudo-boxes per unlabeled image (training)", f"{float(per_image):.2f}"))
    quality_path = run.root / "pseudo_labels" / "pseudo_labels.json"
    quality = read_json(quality_path) if quality_path.is_file() else None
    missing = None
    if quality is None:
        missing = (
            "Precision, recall and the class distribution of the pseudo-labels were not measured for "
            "this run (no pseudo_labels/pseudo_labels.json)."
        )
    return {"facts": facts, "quality": quality, "missing": missing}


def versions() -> list[tuple[str, str]]:
    """tailteacher, torch and torchvision of the environment writing the report."""
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    out = [("tailteacher", __version__)]
    for name in ("torch", "torchvision"):
        try:
            out.append((name, version(name)))
        except PackageNotFoundError:
            out.append((name, "not installed"))
    return out


def run_context(run: RunData) -> dict[str, Any]:
    """Everything ``report.html.j2`` shows of a run."""
    from .markdown import METRICS, gain_sentence

    rows = run.table()
    config_model = run.student or run.teacher
    return {
        "kind": "run",
        "title": f"tailteacher run: {run.root.name}",
        "root": str(run.root),
        "versions": versions(),
        "config_name": str(config_model.folder / "config.yaml"),
        "config_text": config_model.config_text,
        "metrics": list(METRICS),
        "table": table_section(rows),
        "gain": gain_sentence(rows),
        "paired": None,
        "comparisons": None,
        "ablation_intro": "",
        "val_json": run.data.get("val_json"),
        "groups": [GROUP_LABELS[g] for g in GROUPS],
        "ece": ece_section(run.models),
        "reliability": reliability_section(run),
        "frequency": frequency_section(run),
        "fractions": None,
        "examples": examples_section(run),
        "pseudo": pseudo_label_section(run),
        "per_class": per_class_section(run),
        "has_student": run.student is not None,
    }
