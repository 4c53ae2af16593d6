"""The paper's figures as PNG: reliability diagrams (Fig. 3) and AP per class against training
frequency (Fig. 4).

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global backend switch), at
a fixed size in pixels, and written atomically (a reader never sees half a PNG).
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..io import atomic_write_bytes
from ..labels import ReliabilityBins

DPI = 100
RELIABILITY_SIZE = (500, 500)  # pixels
FREQUENCY_PLOT_SIZE = (700, 450)
GROUP_COLORS = {"r": "#d62728", "c": "#ff7f0e", "f": "#1f77b4"}
GROUP_NAMES = {"r": "rare", "c": "common", "f": "frequent"}


def _figure(size: tuple[int, int]) -> Figure:
    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str]) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)  # no bbox_inches="tight": the size stays fixed
    atomic_write_bytes(path, buffer.getvalue())


def plot_reliability(
    bins: ReliabilityBins, path: str | os.PathLike[str], *, title: str, ece: float | None = None
) -> None:
    """Reliability diagram: accuracy per confidence bin (bars) against the diagonal.

    The gap between each bar and the bin's mean confidence is drawn hatched (red above the
    bar: overconfident), and each bar carries its number of detections.
    """
    edges = bins.edges.tolist()
    width = edges[1] - edges[0]
    centers = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
    count = [int(c) for c in bins.count.tolist()]
    acc = bins.accuracy.tolist()
    conf = bins.confidence.tolist()
    fig = _figure(RELIABILITY_SIZE)
    ax = fig.add_axes((0.14, 0.12, 0.8, 0.76))
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="perfect calibration")
    shown = [i for i, c in enumerate(count) if c > 0]
    ax.bar(
        [centers[i] for i in shown],
        [acc[i] for i in shown],
        width=width,
        color="#1f77b4",
        edgecolor="black",
        linewidth=0.6,
        label="accuracy",
    )
    ax.bar(
        [centers[i] for i in shown],
        [conf[i] - acc[i] for i in shown],
        bottom=[acc[i] for i in shown],
        width=width,
        color="none",
        edgecolor="#d62728",
        hatch="//",
        linewidth=0.6,
        label="gap to mean confidence",
    )
    for i in shown:
        ax.text(centers[i], max(acc[i], conf[i]) + 0.015, str(count[i]), ha="center", va="bottom", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy (IoU ≥ 0.5)")
    total = sum(count)
    subtitle = f"{total} detections" + (f", ECE {ece:.3f}" if ece is not None else "")
    ax.set_title(f"{title}\n{subtitle}", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    _save(fig, path)


def plot_ap_vs_frequency(
    per_category: Sequence[dict[str, Any]],
    path: str | os.PathLike[str],
    *,
    frequency_key: str = "instance_count",
    title: str = "AP per category against training frequency",
) -> int:
    """Scatter of each category's AP against its training ``frequency_key`` (log scale),
    coloured by frequency group. Categories without ground truth (AP None) or without the
    count are left out.

    Returns:
        the number of categories plotted.
    """
    fig = _figure(FREQUENCY_PLOT_SIZE)
    ax = fig.add_axes((0.1, 0.12, 0.86, 0.78))
    plotted = 0
    for group, color in GROUP_COLORS.items():
        pts = [
            (c[frequency_key], 100.0 * c["AP"])
            for c in per_category
            if c["frequency"] == group and c.get("AP") is not None and c.get(frequency_key) is not None
        ]
        plotted += len(pts)
        if pts:
            ax.scatter(
                [max(x, 1) for x, _ in pts],
                [y for _, y in pts],
                s=14,
                color=color,
                alpha=0.8,
                label=f"{GROUP_NAMES[group]} ({len(pts)})",
            )
    ax.set_xscale("log")
    ax.set_ylim(-2, 102)
    ax.set_xlabel(f"training {frequency_key.replace('_', ' ')} (log scale)")
    ax.set_ylabel("AP")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    if plotted:
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no category with ground truth and a count", transform=ax.transAxes, ha="center")
        ax.set_xlim(1, 10)
    _save(fig, path)
    return plotted
