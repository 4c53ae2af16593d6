"""A generated LVIS-format ground truth and detector output, for tests and benchmarks.

Objects are random star-shaped polygons (RLE masks through pycocotools, never dense masks), so
cases of LVIS density (500 images × 300 detections) build in seconds. Categories get a
training frequency (``image_count``, ``instance_count``) drawn from a power law and the LVIS
group it implies (r ≤ 10 images, c 11–100, f > 100); images get ``neg_category_ids`` and
``not_exhaustive_category_ids``. The detections are what a detector's output looks like to an
evaluator: jittered copies of ground-truth objects (some under a look-alike category), and
background boxes of positive, negative and unrelated categories, with scores that favour the
good ones. Nothing here is a claim about a real model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pycocotools.mask as mask_utils


def _polygon(
    rng: np.random.Generator, cx: float, cy: float, radius: float, height: int, width: int
) -> list[float]:
    n = int(rng.integers(6, 13))
    angles = np.sort(rng.uniform(0.0, 2.0 * np.pi, n))
    radii = radius * rng.uniform(0.6, 1.0, n)
    xs = np.clip(cx + radii * np.cos(angles), 0.0, width - 1.0)
    ys = np.clip(cy + radii * np.sin(angles), 0.0, height - 1.0)
    return np.stack([xs, ys], axis=1).ravel().round(2).tolist()  # type: ignore[no-any-return]


def _frequency(image_count: int) -> str:
    return "r" if image_count <= 10 else ("c" if image_count <= 100 else "f")


def synthetic_lvis_case(
    *,
    num_images: int = 6,
    num_categories: int = 12,
    gt_per_image: int = 6,
    dets_per_image: int = 40,
    seed: int = 0,
    score_decimals: int | None = None,
    zero_area_dets: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Build ``(ground_truth, results)``: an LVIS v1-style dict and a COCO results list.

    Category ids are 1, 4, 7, ... and image ids 100, 103, ... (not contiguous, so that code
    that confuses ids with indices fails). ``score_decimals`` rounds scores, which makes ties
    (the case where evaluators differ if they break them differently). ``zero_area_dets``
    adds that many detections per image with an empty box and mask. Every category's group
    is set from its ``image_count``; the first three categories are r, c, f whatever the draw,
    so that every group is present.
    """
    rng = np.random.default_rng(seed)
    cat_ids = [1 + 3 * k for k in range(num_categories)]
    # Training frequencies log-uniform in [1, 3000]: about 30 % rare, 30 % common, 40 % frequent
    # (LVIS v1: 28 / 38 / 34 %).
    image_counts = np.exp(rng.uniform(0.0, np.log(3000.0), num_categories)).astype(int)
    image_counts[:3] = [3, 40, 400]
    categories = []
    for cid, count in zip(cat_ids, image_counts.tolist(), strict=True):
        categories.append(
            {
                "id": cid,
                "name": f"category_{cid}",
                "synset": f"category_{cid}.n.01",
                "frequency": _frequency(count),
                "image_count": count,
                "instance_count": int(count * rng.integers(1, 4)),
            }
        )
    weights = np.log1p(image_counts.astype(float)) + 0.5
    weights /= weights.sum()

    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for i in range(num_images):
        image_id = 100 + 3 * i
        height, width = int(rng.integers(240, 481)), int(rng.integers(320, 641))
        num_pos = min(num_categories, int(rng.integers(1, 5)))
        positives = rng.choice(num_categories, size=num_pos, replace=False, p=weights)
        others = np.setdiff1d(np.arange(num_categories), positives)
        num_neg = min(len(others), int(rng.integers(1, 9)))
        negatives = rng.choice(others, size=num_neg, replace=False)
        not_exhaustive = [int(cat_ids[k]) for k in positives if rng.random() < 0.25]
        images.append(
            {
                "id": image_id,
                "height": height,
                "width": width,
                "file_name": f"{image_id:012d}.jpg",
                "neg_category_ids": sorted(int(cat_ids[k]) for k in negatives),
                "not_exhaustive_category_ids": sorted(not_exhaustive),
            }
        )
        gt_polys: list[tuple[int, float, float, float]] = []
        polys: list[list[float]] = []
        gt_cats: list[int] = []
        for _ in range(gt_per_image):
            k = int(positives[rng.integers(num_pos)])
            # Log-uniform radius: small, medium and large objects (LVIS areas 32², 96²).
            radius = float(np.exp(rng.uniform(np.log(4.0), np.log(min(height, width) / 2.5))))
            cx, cy = float(rng.uniform(0, width)), float(rng.uniform(0, height))
            gt_polys.append((k, cx, cy, radius))
            polys.append(_polygon(rng, cx, cy, radius, height, width))
            gt_cats.append(k)
        rles = mask_utils.frPyObjects(polys, height, width)
        areas = mask_utils.area(rles)
        boxes = mask_utils.toBbox(rles)
        for k, area, box, poly in zip(gt_cats, areas, boxes, polys, strict=True):
            if area <= 0:
                continue
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cat_ids[k],
                    "segmentation": [poly],
                    "area": float(area),
                    "bbox": [float(v) for v in box],
                }
            )

        det_polys: list[list[float]] = []
        det_cats: list[int] = []
        det_scores: list[float] = []
        while len(det_polys) < dets_per_image:
            u = rng.random()
            if u < 0.5 and gt_polys:  # a jittered copy of a ground truth
                k, cx, cy, radius = gt_polys[int(rng.integers(len(gt_polys)))]
                jitter = float(rng.uniform(0.0, 0.5))
                if rng.random() < 0.2:  # confused with another category
                    k = int(rng.integers(num_categories))
                cx += jitter * radius * float(rng.normal())
                cy += jitter * radius * float(rng.normal())
                radius *= float(np.exp(rng.normal(0.0, jitter)))
                score = float(np.clip(rng.beta(4, 2) * (1.0 - jitter), 0.0, 1.0))
            else:  # background: a positive, a negative or an unrelated category
                pool = positives if u < 0.65 else (negatives if u < 0.8 else np.arange(num_categories))
                k = int(pool[rng.integers(len(pool))])
                radius = float(np.exp(rng.uniform(np.log(3.0), np.log(min(height, width) / 2.5))))
                cx, cy = float(rng.uniform(0, width)), float(rng.uniform(0, height))
                score = float(rng.beta(1, 5))
            det_polys.append(_polygon(rng, cx, cy, max(radius, 2.0), height, width))
            det_cats.append(k)
            det_scores.append(score)
        det_rles = mask_utils.frPyObjects(det_polys, height, width)
        det_boxes = mask_utils.toBbox(det_rles)
        for k, rle, box, score in zip(det_cats, det_rles, det_boxes, det_scores, strict=True):
            if score_decimals is not None:
                score = round(score, score_decimals)
            results.append(
                {
                    "image_id": image_id,
                    "category_id": cat_ids[k],
                    "score": score,
                    "bbox": [float(v) for v in box],
                    "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")},
                }
            )
        if zero_area_dets:
            empty = mask_utils.encode(np.zeros((height, width, 1), dtype=np.uint8, order="F"))[0]
            for _ in range(zero_area_dets):
                results.append(
                    {
                        "image_id": image_id,
                        "category_id": cat_ids[int(positives[0])],
                        "score": float(rng.uniform(0.5, 1.0)),
                        "bbox": [
                            float(rng.uniform(0, width - 1)),
                            float(rng.uniform(0, height - 1)),
                            0.0,
                            0.0,
                        ],
                        "segmentation": {"size": [height, width], "counts": empty["counts"].decode("ascii")},
                    }
                )
    ground_truth = {
        "info": {"description": "tailteacher synthetic LVIS-format evaluation case"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    return ground_truth, results
