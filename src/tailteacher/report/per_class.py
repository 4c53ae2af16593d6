"""The per-class table: training frequency, the teacher's Δ (Eq. 4), AP of teacher and student
and their difference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

GROUP_ORDER = {"r": 0, "c": 1, "f": 2}


def _points(v: Any) -> float | None:
    return None if v is None else 100.0 * float(v)


def per_class_rows(
    teacher: Sequence[Mapping[str, Any]],
    student: Sequence[Mapping[str, Any]] | None = None,
    ccece: Mapping[int, float] | None = None,
) -> list[dict[str, Any]]:
    """One row per category of ``teacher``'s ``per_category`` (``LvisEvaluation.per_category``):
    id, name, group (r/c/f), train_instances (the category's ``instance_count``, the LVIS
    training frequency), ap_teacher and ap_student in points (None without ground truth, or no
    student), gain = student − teacher, and ccece: the teacher's Δ of the category (Eq. 4 on the
    held-out split, ``ccece`` by category id; None without one). Sorted from the rarest (fewest
    training instances, then id)."""
    by_id = {int(c["id"]): c for c in student or ()}
    rows = []
    for c in teacher:
        t = _points(c.get("AP"))
        s_cat = by_id.get(int(c["id"]))
        s = _points(s_cat.get("AP")) if s_cat is not None else None
        rows.append(
            {
                "id": int(c["id"]),
                "name": str(c["name"]),
                "group": str(c.get("frequency", "")),
                "train_instances": c.get("instance_count"),
                "ap_teacher": t,
                "ap_student": s,
                "gain": None if t is None or s is None else s - t,
                "ccece": None if ccece is None else ccece.get(int(c["id"])),
            }
        )
    rows.sort(key=lambda r: (r["train_instances"] if r["train_instances"] is not None else 0, r["id"]))
    return rows
