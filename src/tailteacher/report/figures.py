"""The report's figures as PNG bytes (matplotlib's Agg canvas, no pyplot).

Fig. 3 and Fig. 4 reuse ``evaluation.plots``; Fig. 2 (label-fraction curves) and Fig. 5
(predictions overlaid on an image) are drawn here.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..evaluation.plots import DPI, plot_ap_vs_frequency, plot_reliability

#: Fig. 5: at most this many detections per panel, the highest scores.
MAX_SHOWN = 8
PALETTE = ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf", "#17becf")


def _via_file(draw: Callable[[Path], object]) -> bytes:
    """The bytes of the PNG ``draw`` writes to the path it is given."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "figure.png"
        draw(path)
        return path.read_bytes()


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _figure(width: int, height: int) -> Figure:
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def reliability_from_json(reliability: Mapping[str, Any], *, title: str, ece: float | None) -> bytes:
    """Fig. 3 from a calibration.json's ``reliability[group]`` (edges, count, accuracy, confidence)."""
    import torch

    from ..labels import ReliabilityBins

    bins = ReliabilityBins(
        *(
            torch.tensor(reliability[k], dtype=torch.float64)
            for k in ("edges", "count", "accuracy", "confidence")
        )
    )
    return _via_file(lambda p: plot_reliability(bins, p, title=title, ece=ece))


def ap_vs_frequency(per_category: Sequence[dict[str, Any]], *, title: str) -> bytes:
    """Fig. 4: AP per category against its training instance count, coloured by group."""
    return _via_file(lambda p: plot_ap_vs_frequency(per_category, p, title=title))


def fraction_curves(curves: Mapping[str, Mapping[float, Mapping[str, Any]]]) -> bytes:
    """Fig. 2: AP and APr against the fraction of labeled images, one line per row.

    Args:
        curves: {row label: {fraction: {"AP": (mean, std), "APr": (mean, std)}}}; a std may be
            None (one seed), a mean None (not measured: the point is left out).
    """
    fig = _figure(900, 380)
    for i, metric in enumerate(("AP", "APr")):
        ax = fig.add_axes((0.07 + 0.5 * i, 0.15, 0.4, 0.72))
        for j, (label, points) in enumerate(curves.items()):
            xs = sorted(f for f in points if points[f].get(metric, (None, None))[0] is not None)
            if not xs:
                continue
            means = [points[f][metric][0] for f in xs]
            stds = [points[f][metric][1] or 0.0 for f in xs]
            ax.errorbar(
                [100 * f for f in xs], means, yerr=stds, marker="o", capsize=3,
                color=PALETTE[j % len(PALETTE)], label=label,
            )  # fmt: skip
        ax.set_xlabel("labeled images (%)")
        ax.set_ylabel(f"{metric} (points)")
        ax.set_title(f"{metric} by fraction of the labels", fontsize=10)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    return _png(fig)


def _mask(segmentation: Any, height: int, width: int) -> np.ndarray | None:
    """A COCO segmentation (RLE, or polygons) as a [H, W] bool array; None if it cannot be read."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), str):
        rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}
    elif isinstance(segmentation, list) and segmentation:
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    else:
        return None
    decoded = np.asarray(mask_utils.decode(rle))
    return decoded.astype(bool) if decoded.shape == (height, width) else None


def _overlay(
    ax: Any, image: np.ndarray, records: Sequence[Mapping[str, Any]], names: Mapping[int, str], title: str
) -> None:
    height, width = image.shape[:2]
    shown = image.astype(np.float64) / 255.0
    for k, r in enumerate(records):
        rgb = np.asarray([int(PALETTE[k % len(PALETTE)][i : i + 2], 16) / 255 for i in (1, 3, 5)])
        m = _mask(r.get("segmentation"), height, width)
        if m is not None:
            shown[m] = 0.55 * shown[m] + 0.45 * rgb
    ax.imshow(shown, interpolation="nearest")
    for k, r in enumerate(records):
        x, y, w, h = (float(v) for v in r["bbox"])
        color = PALETTE[k % len(PALETTE)]
        ax.add_patch(_rectangle((x, y), w, h, color))
        score = f" {float(r['score']):.2f}" if "score" in r else ""
        ax.text(
            x, y, f"{names.get(int(r['category_id']), r['category_id'])}{score}", fontsize=6, color="white",
            va="bottom", bbox={"facecolor": color, "alpha": 0.8, "pad": 1, "linewidth": 0},
        )  # fmt: skip
    ax.set_title(title, fontsize=8)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.axis("off")


def _rectangle(xy: tuple[float, float], w: float, h: float, color: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle(xy, w, h, fill=False, edgecolor=color, linewidth=1.2)


def top_detections(
    detections: Sequence[Mapping[str, Any]], min_score: float, limit: int = MAX_SHOWN
) -> list[Mapping[str, Any]]:
    """The ``limit`` highest-scoring detections with score ≥ ``min_score``."""
    kept = [d for d in detections if float(d["score"]) >= min_score]
    return sorted(kept, key=lambda d: -float(d["score"]))[:limit]


def example(
    image: np.ndarray,
    truth: Sequence[Mapping[str, Any]],
    teacher: Sequence[Mapping[str, Any]],
    student: Sequence[Mapping[str, Any]],
    names: Mapping[int, str],
    *,
    title: str,
    rare_ids: set[int],
) -> bytes:
    """Fig. 5 for one image: ground truth, teacher and student side by side (masks, boxes, class
    names, scores; the detections given, already filtered by ``top_detections``)."""
    fig = _figure(960, 360)
    rare_truth = sum(1 for a in truth if a["category_id"] in rare_ids)
    panels = (
        (truth, f"ground truth ({len(truth)} objects, {rare_truth} rare)"),
        (teacher, f"teacher ({len(teacher)} shown)"),
        (student, f"student ({len(student)} shown)"),
    )
    for i, (records, label) in enumerate(panels):
        ax = fig.add_axes((0.01 + i / 3, 0.02, 1 / 3 - 0.02, 0.84))
        _overlay(ax, image, records, names, label)
    fig.suptitle(title, fontsize=9)
    return _png(fig)


__all__ = [
    "ap_vs_frequency",
    "example",
    "fraction_curves",
    "reliability_from_json",
    "top_detections",
]
