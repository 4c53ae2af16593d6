"""The one rule for an annotation's ``segmentation``, used by every reader before anything is rasterised.

Both readers of LVIS/COCO ground truth — the training data's (``data.lvis_json``) and the
evaluator's (``evaluation.ground_truth``) — ask ``segmentation_problem`` before pycocotools sees a
mask, because pycocotools trusts its input: a polygon of two points (four numbers) is read as a box
and ``frPyObjects`` raises a ``TypeError``; a vertex at 2e8 px makes its rasteriser walk the whole
edge and allocate tens of GB; a compressed RLE whose runs do not tile the image decodes garbage.

Accepted (D72):
    polygons  a non-empty list of flat ``[x1, y1, x2, y2, …]`` lists, each ≥ 3 points, finite, every
              vertex within ``POLYGON_MARGIN`` image sizes of the image ([−W, 2W] × [−H, 2H] at 1.0);
    RLE       ``{size: [H, W], counts}`` with the image's size and counts either run lengths
              (uncompressed, integers ≥ 0 adding up to H × W) or a compressed string whose runs do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..numbers import is_finite_number

#: The largest image side (px) either reader accepts: 2^20, so that H × W, RLE run lengths and
#: pycocotools' sizes stay far inside int64; a larger value is a typo or a unit mix-up, not an image.
MAX_IMAGE_SIDE = 2**20

#: How far outside the image (in image widths / heights) a polygon vertex may lie. Labelling tools
#: leave vertices a little outside the border; none has a reason to go a whole image further.
POLYGON_MARGIN = 1.0


def _is_count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def polygon_problem(poly: object, k: int, height: float, width: float) -> str | None:
    """Why polygon ``k`` of a segmentation is refused, or None."""
    if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
        return f"polygon {k}: expected a flat list [x1, y1, x2, y2, …] of ≥ 3 points"
    if not all(is_finite_number(v) for v in poly):
        return f"polygon {k}: expected finite numbers"
    xs, ys = np.asarray(poly[0::2], dtype=np.float64), np.asarray(poly[1::2], dtype=np.float64)
    mx, my = POLYGON_MARGIN * width, POLYGON_MARGIN * height
    if xs.min() < -mx or xs.max() > width + mx or ys.min() < -my or ys.max() > height + my:
        return (
            f"polygon {k}: vertices reach x ∈ [{xs.min():.6g}, {xs.max():.6g}], y ∈ [{ys.min():.6g}, "
            f"{ys.max():.6g}], more than {POLYGON_MARGIN:g} image size outside the {width:g}×{height:g} image"
        )
    return None


def segmentation_problem(seg: Any, height: float, width: float) -> tuple[str, str] | None:
    """``(field, message)`` saying why ``seg`` cannot be rasterised on a ``height`` × ``width``
    image, or None when it can. ``field`` is ``segmentation``, ``segmentation.size`` or
    ``segmentation.counts``."""
    if isinstance(seg, list):
        if not seg:
            return "segmentation", "expected at least one polygon"
        for k, poly in enumerate(seg):
            why = polygon_problem(poly, k, height, width)
            if why:
                return "segmentation", why
        return None
    if not isinstance(seg, dict):
        return "segmentation", f"expected polygons (a list) or an RLE (a dict), got {type(seg).__name__}"
    size, counts = seg.get("size"), seg.get("counts")
    h, w = int(height), int(width)
    if size != [h, w]:
        return "segmentation.size", f"expected the image's [height, width] [{h}, {w}], got {size!r}"
    if isinstance(counts, list):
        if not all(_is_count(v) for v in counts) or sum(counts) != h * w:
            return "segmentation.counts", f"expected run lengths (integers ≥ 0) adding up to H × W = {h * w}"
        return None
    if isinstance(counts, str):
        from ..evaluation.rle import check_rle_counts

        problem = check_rle_counts([counts], np.array([h]), np.array([w])).problem[0]
        return ("segmentation.counts", problem) if problem else None
    return "segmentation.counts", "expected a compressed string or a list of run lengths"
