"""Detections matched to ground truth by LVIS's rules, for every IoU threshold and area range.

Shapes: A = 4 area ranges (all, small, medium, large), T = 10 IoU thresholds (0.50:0.05:0.95),
M detections kept by the federated rules, G annotations, P (image, category) pairs.

The rules (LVISEval ``_prepare`` / ``evaluate_img``):
- a detection is kept only if its category is positive (annotated) or negative
  (``neg_category_ids``) for its image; other categories were not verified there;
- per pair and threshold, detections in decreasing score take greedily the unmatched ground
  truth of highest IoU ≥ threshold (ties: the later annotation), preferring ground truth that
  is not ignored; a ground truth is ignored in an area range it lies outside (or if ``ignore``);
- a detection matched to an ignored ground truth is ignored; an unmatched one is ignored when
  its own area is outside the range or its category is not exhaustively annotated in its image.

How it is fast: IoU (pycocotools, the same code LVISEval calls, so identical values) only for
pairs that have both detections and ground truth; detections below the lowest threshold with
every ground truth can match nothing and skip the greedy loop; the loop runs once over the
detections' ranks for all pairs, thresholds and area ranges at once (numpy), and area ranges
whose ground truth is all in or all out of range reuse the matching without ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pycocotools.mask as mask_utils

from .ground_truth import GroundTruth
from .results import Detections

# As LVIS Params (np.linspace, not np.arange: the same float values, compared the same way).
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
AREA_RANGES = {
    "all": (0.0**2, 1e5**2),
    "small": (0.0**2, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
_EFFECTIVE_THRESHOLDS = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)  # LVISEval's min(thr, 1 - 1e-10)
_PAIR_BATCH = 4096  # pairs solved together (bounds memory at LVIS scale)


@dataclass(eq=False)
class Matches:
    """Per detection kept by the federated rules, sorted by category, then decreasing score,
    then image, then record (LVISEval's accumulation order)."""

    detection: np.ndarray  # [M] index into the Detections arrays
    image: np.ndarray  # [M] image index
    category: np.ndarray  # [M] category index
    score: np.ndarray  # [M] float64
    matched: np.ndarray  # [A, T, M] bool: matched a ground truth not ignored (a true positive)
    ignored: np.ndarray  # [A, T, M] bool: neither true nor false positive
    num_gt: np.ndarray  # [K, A] int64: ground truth not ignored, per category and area range


def _sort_codes(codes: np.ndarray, *keys: np.ndarray) -> np.ndarray:
    return np.lexsort((*reversed(keys), codes))


def _segments(sorted_codes: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.searchsorted(sorted_codes, wanted, "left"), np.searchsorted(sorted_codes, wanted, "right")


def _greedy(ious: list[np.ndarray], ignore: list[np.ndarray | None]) -> list[np.ndarray]:
    """Greedy matching of several problems at once.

    Args:
        ious: per problem [C, G] IoU of its candidate detections (in decreasing score) with
            its ground truth.
        ignore: per problem [G] bool, which ground truth is ignored (None: none).

    Returns:
        per problem [C, T] int64: the ground truth each detection takes, or −1.
    """
    out = [np.full((iou.shape[0], len(IOU_THRESHOLDS)), -1, np.int64) for iou in ious]
    # Batches of equal ground-truth counts (padded to a multiple of 8 beyond 16, where few are).
    sizes = np.array([iou.shape[1] for iou in ious], dtype=np.int64)
    width = np.where(sizes <= 16, sizes, (sizes + 7) // 8 * 8)
    for g_pad in np.unique(width).tolist():
        members = np.flatnonzero(width == g_pad)
        for start in range(0, len(members), _PAIR_BATCH):
            _greedy_batch([int(q) for q in members[start : start + _PAIR_BATCH]], ious, ignore, out, g_pad)
    return out


# A non-negative float64 read as int64 keeps its order; ground truth not ignored gets this on
# top (IoU ≤ 1.0 reads as < 2**62), so one argmax prefers it and then the highest IoU, exactly.
_NOT_IGNORED = np.int64(1) << 62


def _greedy_batch(
    members: list[int],
    ious: list[np.ndarray],
    ignore: list[np.ndarray | None],
    out: list[np.ndarray],
    g_pad: int,
) -> None:
    num_t = len(IOU_THRESHOLDS)
    members.sort(key=lambda q: -ious[q].shape[0])  # active problems are then a prefix
    count = np.array([ious[q].shape[0] for q in members], dtype=np.int64)
    offset = np.concatenate(([0], np.cumsum(count)[:-1]))
    total = int(count.sum())
    # Ground truth is stored in reverse order, so that argmax (the first maximum) finds the
    # last one of equal IoU, as LVISEval's loop does. Padding never reaches a threshold.
    rows = np.full((total, g_pad), -1.0)
    keys = np.zeros((total, g_pad), np.int64)
    for j, q in enumerate(members):
        c, g = ious[q].shape
        rev = ious[q][:, ::-1]
        rows[offset[j] : offset[j] + c, g_pad - g :] = rev
        ig = ignore[q]
        bonus = _NOT_IGNORED if ig is None else np.where(ig[::-1], 0, _NOT_IGNORED)
        keys[offset[j] : offset[j] + c, g_pad - g :] = rev.view(np.int64) + bonus
    free = np.ones((len(members), num_t, g_pad), bool)
    choice = np.full((total, num_t), -1, np.int64)
    thr = _EFFECTIVE_THRESHOLDS[None, :, None]
    for r in range(int(count.max(initial=0))):
        n = int(np.searchsorted(-count, -r, side="left"))  # problems with more than r candidates
        at = offset[:n] + r
        avail = free[:n] & (rows[at][:, None, :] >= thr)  # [n, T, G]
        key = np.where(avail, keys[at][:, None, :], -1)
        best = np.argmax(key, axis=-1)  # [n, T]
        found = np.take_along_axis(key, best[..., None], axis=-1)[..., 0] >= 0
        p_idx, t_idx = np.nonzero(found)
        free[p_idx, t_idx, best[p_idx, t_idx]] = False
        choice[at] = np.where(found, best, -1)
    for j, q in enumerate(members):
        picked = choice[offset[j] : offset[j] + count[j]]
        out[q][:] = np.where(picked >= 0, g_pad - 1 - picked, -1)  # back to file order


def _pair_ious(
    gt: GroundTruth, dets: Detections, iou_type: str, det_idx: np.ndarray, gt_idx: np.ndarray
) -> np.ndarray:
    crowd = [0] * len(gt_idx)
    if iou_type == "bbox":
        assert dets.bbox is not None and gt.ann_bbox is not None
        return np.asarray(mask_utils.iou(dets.bbox[det_idx], gt.ann_bbox[gt_idx], crowd))
    assert dets.segmentation is not None
    rles = gt.rles()
    dt = [dets.segmentation[i] for i in det_idx.tolist()]
    return np.asarray(mask_utils.iou(dt, [rles[g] for g in gt_idx.tolist()], crowd))


def match(gt: GroundTruth, dets: Detections, iou_type: str) -> Matches:
    """Match ``dets`` to ``gt`` as LVISEval does, for all thresholds and area ranges."""
    gt.require(iou_type)
    k = gt.num_categories
    ranges = np.array(list(AREA_RANGES.values()))  # [A, 2]

    # Federated filter: keep categories positive or negative for the image.
    codes = dets.image * k + dets.category
    keep = np.isin(codes, gt.positive_pairs) | np.isin(codes, gt.negative_pairs)
    kept = np.flatnonzero(keep)
    # Detections by pair, then decreasing score, then record: the order of greedy matching.
    by_pair = kept[_sort_codes(codes[kept], -dets.score[kept], dets.record[kept])]
    det_codes = codes[by_pair]
    gt_codes = gt.ann_image * k + gt.ann_category
    gt_order = np.argsort(gt_codes, kind="stable")  # per pair, in file order
    gt_sorted_codes = gt_codes[gt_order]
    # Ground truth ignored per area range: [A, G] in gt_order.
    gt_area = gt.ann_area[gt_order]
    gt_ig = gt.ann_ignore[gt_order][None, :] | (gt_area < ranges[:, :1]) | (gt_area > ranges[:, 1:])

    pairs = np.intersect1d(det_codes, gt_sorted_codes)
    d_lo, d_hi = _segments(det_codes, pairs)
    g_lo, g_hi = _segments(gt_sorted_codes, pairs)
    num_a, num_t = len(AREA_RANGES), len(IOU_THRESHOLDS)
    cand_rows: list[np.ndarray] = []  # per pair, candidates' positions in by_pair
    cand_ious: list[np.ndarray] = []
    for p in range(len(pairs)):
        iou = _pair_ious(gt, dets, iou_type, by_pair[d_lo[p] : d_hi[p]], gt_order[g_lo[p] : g_hi[p]])
        # Below the lowest threshold with every ground truth, a detection matches nothing.
        cand = np.flatnonzero(iou.max(axis=1) >= _EFFECTIVE_THRESHOLDS[0])
        cand_rows.append(d_lo[p] + cand)
        cand_ious.append(iou[cand])
    # One problem per pair without area ranges, and one per (pair, range) whose ground truth
    # is partly in and partly out of the range (otherwise the choice is the same).
    ig_before = np.zeros((num_a, len(gt_order) + 1), np.int64)
    np.cumsum(gt_ig, axis=1, out=ig_before[:, 1:])
    num_ig = ig_before[:, g_hi] - ig_before[:, g_lo]  # [A, P]
    mixed = (num_ig > 0) & (num_ig < g_hi - g_lo)
    problems = [(p, -1) for p in range(len(pairs))]
    problems += [(int(p), int(a)) for a, p in zip(*np.nonzero(mixed), strict=True)]
    solved = _greedy(
        [cand_ious[p] for p, _ in problems],
        [None if a < 0 else gt_ig[a, g_lo[p] : g_hi[p]] for p, a in problems],
    )
    # Which ground truth (index into gt_order) each candidate takes, or −1: [A, T, candidates].
    cand_first = np.cumsum([0] + [len(c) for c in cand_rows])
    taken = np.full((num_a, num_t, int(cand_first[-1])), -1, np.int32)
    for (p, a), choice in zip(problems, solved, strict=True):
        gt_index = np.where(choice >= 0, g_lo[p] + choice, -1).T  # [T, C]
        taken[a if a >= 0 else slice(None), :, cand_first[p] : cand_first[p + 1]] = gt_index

    # Everything from here on in LVISEval's accumulation order.
    order = _sort_codes(
        dets.category[by_pair], -dets.score[by_pair], dets.image[by_pair], dets.record[by_pair]
    )
    final = by_pair[order]
    position = np.empty(len(order), np.int64)
    position[order] = np.arange(len(order))
    cand = position[np.concatenate(cand_rows)] if cand_rows else np.zeros(0, np.int64)
    took = taken >= 0
    took_ignored = gt_ig[np.arange(num_a)[:, None, None], np.maximum(taken, 0)] & took
    matched = np.zeros((num_a, num_t, len(final)), bool)
    matched[:, :, cand] = took & ~took_ignored
    ignored = np.zeros((num_a, num_t, len(final)), bool)
    ignored[:, :, cand] = took_ignored
    area = dets.area[final]
    outside = (area[None, :] < ranges[:, :1]) | (area[None, :] > ranges[:, 1:])  # [A, M]
    not_exhaustive = np.isin(codes[final], gt.not_exhaustive_pairs)  # [M]
    unmatched = ~matched & ~ignored
    ignored |= unmatched & (outside | not_exhaustive[None, :])[:, None, :]
    num_gt = np.stack(
        [np.bincount(gt.ann_category[gt_order][~gt_ig[a]], minlength=k) for a in range(num_a)],
        axis=1,
    )
    return Matches(
        detection=final,
        image=dets.image[final],
        category=dets.category[final],
        score=dets.score[final],
        matched=matched,
        ignored=ignored,
        num_gt=num_gt.astype(np.int64),
    )
