"""Images a stage could not use: each reported with its file and reason, and a run refused when
too many are.

A stage that reads images (prototypes, training, prediction) keeps going past an unreadable file —
a day-long run should not die on one corrupt JPEG — but never silently: its summary json lists
every skipped image (up to ``LISTED``) with the reason, and when more than
``data.max_skipped_fraction`` of the images it read were skipped the stage stops with an
``InputError`` (a wrong image root or a half-copied data set is not a data set).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import InputError, Problem
from .dataset import Skipped

#: How many skipped images a summary lists (the count is always exact).
LISTED = 100


def skip_summary(skipped: Sequence[Skipped], total: int) -> dict[str, Any]:
    """``{"count", "total", "images": [{"image_id", "file", "reason"}, …]}`` of ``total`` images read,
    each image listed once (a training loop may meet the same file many times)."""
    unique = {s.image_id: s for s in skipped}
    listed = [
        {"image_id": s.image_id, "file": s.file, "reason": s.reason} for s in list(unique.values())[:LISTED]
    ]
    return {"count": len(unique), "total": total, "images": listed}


def check_skipped(skipped: Sequence[Skipped], total: int, max_fraction: float, source: str) -> dict[str, Any]:
    """The summary of ``skip_summary``; raises when the share of skipped images exceeds ``max_fraction``.

    ``total`` counts the distinct images read (for training: the distinct images drawn), and the
    skipped images are counted once each, so that a file drawn many times counts once.

    Raises:
        InputError: naming ``source`` (the json the images come from), each skipped file and reason
            (the first ten), and ``data.max_skipped_fraction``.
    """
    summary = skip_summary(skipped, total)
    if total and summary["count"] > max_fraction * total:
        problems = [
            Problem(source, f"image id={s['image_id']}", "file_name", f"{s['file']}: {s['reason']}")
            for s in summary["images"][:10]
        ]
        share = summary["count"] / total
        problems.append(
            Problem(
                source,
                "images",
                "data.max_skipped_fraction",
                f"{summary['count']} of {total} images could not be used ({share:.1%}), more than "
                f"{max_fraction:.1%}; fix the files or raise data.max_skipped_fraction",
            )
        )
        raise InputError(problems)
    return summary
