"""A trained detector's predictions as COCO results, and its final save and evaluation.

Shapes (one image):  D  detections    H, W  image size
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config
from ..data.dataset import LvisDataset, Sample, Skipped
from ..data.lvis_json import LvisData, load_lvis
from ..data.skips import check_skipped
from ..evaluation import evaluate
from ..failpoints import kill_point
from ..io import atomic_write_bytes, atomic_write_json
from ..modeling import CascadeMaskRCNN
from .data import images_of


def to_results(
    detections: Sequence[dict[str, torch.Tensor]], image_ids: Sequence[int], category_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """COCO results (bbox XYWH, RLE masks thresholded at 0.5, score) from model outputs
    (per image: boxes [D, 4] XYXY, scores [D], labels [D], masks [D, 1, H, W])."""
    from pycocotools import mask as mask_utils

    out: list[dict[str, Any]] = []
    for det, iid in zip(detections, image_ids, strict=True):
        boxes = det["boxes"].detach().cpu().numpy().astype(np.float64)
        scores = det["scores"].detach().cpu().numpy().astype(np.float64)
        labels = det["labels"].detach().cpu().numpy()
        masks = (det["masks"].detach().cpu()[:, 0] >= 0.5).numpy().astype(np.uint8)
        rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0))) if len(masks) else []
        for k in range(len(scores)):
            x0, y0, x1, y1 = boxes[k].tolist()
            out.append(
                {
                    "image_id": int(iid),
                    "category_id": int(category_ids[int(labels[k])]),
                    "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                    "score": float(scores[k]),
                    "segmentation": {
                        "size": [int(v) for v in rles[k]["size"]],
                        "counts": rles[k]["counts"].decode(),
                    },
                }
            )
    return out


@torch.no_grad()
def predict(
    model: CascadeMaskRCNN,
    data: LvisData,
    *,
    device: torch.device,
    batch_size: int = 8,
    image_ids: Sequence[int] | None = None,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """COCO results for ``data``'s images (all, or ``image_ids``); unreadable images skipped."""
    from ..progress import progress as progress_bar

    dataset = LvisDataset(data, image_ids)
    was_training = model.training
    model.eval()
    results: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    try:
        starts = range(0, len(dataset), batch_size)
        batches = progress_bar(starts, desc="predict", unit="batch") if progress else starts
        for start in batches:
            items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            samples = [s for s in items if isinstance(s, Sample)]
            skipped += [s for s in items if isinstance(s, Skipped)]
            if not samples:
                continue
            outputs = model(images_of(samples, device))
            assert isinstance(outputs, list)
            results += to_results(outputs, [s.image_id for s in samples], data.category_ids)
            kill_point(f"predict/{start // batch_size}")  # fault tests: mid-evaluation
    finally:
        model.train(was_training)
    return results, skipped


def save_and_evaluate(model: CascadeMaskRCNN, config: Config, device: torch.device) -> dict[str, float]:
    """Write ``model_final.safetensors`` into the run folder and evaluate on ``data.val_json``."""
    from safetensors.torch import save

    run_dir = Path(config.run.run_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(run_dir / "model_final.safetensors", save(state))
    return evaluate_model(
        model,
        config.data.val_json,
        config.data.image_root,
        device,
        run_dir,
        "val",
        config.data.max_skipped_fraction,
    )


def evaluate_model(
    model: CascadeMaskRCNN,
    gt_json: str,
    image_root: str,
    device: torch.device,
    out_dir: Path,
    prefix: str,
    max_skipped_fraction: float = 0.0,
) -> dict[str, float]:
    """Predict on ``gt_json``'s images, write ``{prefix}_results.json`` and ``{prefix}_metrics.json``
    (which lists the images that could not be read; more than ``max_skipped_fraction`` of them is an
    ``InputError``: metrics without them would not be the data set's)."""
    gt = load_lvis(gt_json, image_root)
    results, skipped = predict(model, gt, device=device)
    skips = check_skipped(skipped, len(gt.images), max_skipped_fraction, gt_json)
    atomic_write_json(out_dir / f"{prefix}_results.json", results)
    evaluation = evaluate(gt_json, results, iou_type="segm", max_dets=300)
    box = evaluate(gt_json, results, iou_type="bbox", max_dets=300)
    payload: dict[str, Any] = evaluation.to_json()
    payload["bbox_metrics"] = box.metrics
    payload["skipped_images"] = skips
    atomic_write_json(out_dir / f"{prefix}_metrics.json", payload, indent=2)
    return dict(evaluation.metrics)
