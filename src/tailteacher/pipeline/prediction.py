"""A trained detector's predictions as COCO results, and its final save and evaluation.

Under torchrun the ranks share the prediction: each predicts every N-th batch of the batches one
process would form, and rank 0 gathers them in order (``predict_sharded``), so results, files and
metrics equal one process's.

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
from ..engine.distributed import all_gather_objects, current_dist_info, gather_objects
from ..engine.main_rank import on_main
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


#: One batch's output: its COCO results and the images it could not read.
BatchOutput = tuple[list[dict[str, Any]], list[Skipped]]


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
    dataset = LvisDataset(data, image_ids)
    numbers = range(num_batches(len(dataset), batch_size))
    outputs = predict_batches(model, dataset, data.category_ids, numbers, device, batch_size, progress)
    return join_batches(outputs)


def num_batches(num_images: int, batch_size: int) -> int:
    """Batches of ``batch_size`` images (the last one may be smaller) over ``num_images``."""
    return -(-num_images // batch_size)


@torch.no_grad()
def predict_batches(
    model: CascadeMaskRCNN,
    dataset: LvisDataset,
    category_ids: Sequence[int],
    numbers: Sequence[int],
    device: torch.device,
    batch_size: int,
    progress: bool = False,
) -> list[BatchOutput]:
    """The outputs of the batches ``numbers`` (batch k: images k·batch_size … of ``dataset``), in
    that order. A batch is the same images whichever process predicts it, so its detections are too."""
    from ..progress import progress as progress_bar

    was_training = model.training
    model.eval()
    outputs: list[BatchOutput] = []
    try:
        batches = progress_bar(numbers, desc="predict", unit="batch") if progress else numbers
        for number in batches:
            start = number * batch_size
            items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            samples = [s for s in items if isinstance(s, Sample)]
            skipped = [s for s in items if isinstance(s, Skipped)]
            results: list[dict[str, Any]] = []
            if samples:
                detections = model(images_of(samples, device))
                assert isinstance(detections, list)
                results = to_results(detections, [s.image_id for s in samples], category_ids)
                kill_point(f"predict/{number}")  # fault tests: mid-evaluation
            outputs.append((results, skipped))
    finally:
        model.train(was_training)
    return outputs


def predict_sharded(
    model: CascadeMaskRCNN,
    data: LvisData,
    *,
    device: torch.device,
    batch_size: int = 8,
    image_ids: Sequence[int] | None = None,
    progress: bool = False,
    everywhere: bool = False,
) -> tuple[list[dict[str, Any]], list[Skipped]] | None:
    """``predict`` with the batches shared among the ranks of a torchrun job.

    The images are cut into the batches one process would form, and rank r predicts batches
    r, r + N, r + 2N, … (N ranks, every one holding the same weights), so each batch's detections
    are the ones one process computes; the batches are gathered in their order. Returns what
    ``predict`` returns on rank 0 (on every rank with ``everywhere``), None on the other ranks.
    A collective: every rank must call it. ``progress`` shows rank 0's bar.
    """
    dist = current_dist_info()
    dataset = LvisDataset(data, image_ids)
    numbers = range(num_batches(len(dataset), batch_size))[dist.rank :: dist.world_size]
    show = progress and dist.is_main
    mine = predict_batches(model, dataset, data.category_ids, numbers, device, batch_size, show)
    parts = all_gather_objects(mine) if everywhere else gather_objects(mine)
    if parts is None:
        return None
    # batch k is the (k // N)-th of rank k % N's
    ordered = [parts[k % dist.world_size][k // dist.world_size] for k in range(sum(map(len, parts)))]
    return join_batches(ordered)


def join_batches(outputs: Sequence[BatchOutput]) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """The batches' results and skipped images, each concatenated in the batches' order."""
    return [r for res, _ in outputs for r in res], [s for _, sk in outputs for s in sk]


def save_and_evaluate(model: CascadeMaskRCNN, config: Config, device: torch.device) -> dict[str, float]:
    """Write ``model_final.safetensors`` into the run folder and evaluate on ``data.val_json``.

    Under torchrun every rank calls it (with the same weights): rank 0 writes the file, the ranks
    share the prediction (``evaluate_model``), and every rank returns the metrics."""
    from safetensors.torch import save

    run_dir = Path(config.run.run_dir)

    def write() -> None:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        atomic_write_bytes(run_dir / "model_final.safetensors", save(state))

    on_main(write)
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
    ``InputError``: metrics without them would not be the data set's).

    Under torchrun every rank predicts its share of the batches (``predict_sharded``); rank 0 writes
    and evaluates the whole, which equals one process's, and every rank returns the metrics."""
    gt = load_lvis(gt_json, image_root)
    gathered = predict_sharded(model, gt, device=device)

    def write_and_evaluate() -> dict[str, float]:
        assert gathered is not None  # rank 0 holds every rank's batches
        results, skipped = gathered
        skips = check_skipped(skipped, len(gt.images), max_skipped_fraction, gt_json)
        atomic_write_json(out_dir / f"{prefix}_results.json", results)
        evaluation = evaluate(gt_json, results, iou_type="segm", max_dets=300)
        box = evaluate(gt_json, results, iou_type="bbox", max_dets=300)
        payload: dict[str, Any] = evaluation.to_json()
        payload["bbox_metrics"] = box.metrics
        payload["skipped_images"] = skips
        atomic_write_json(out_dir / f"{prefix}_metrics.json", payload, indent=2)
        return dict(evaluation.metrics)

    return on_main(write_and_evaluate)
