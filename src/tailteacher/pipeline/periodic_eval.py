"""Evaluation on ``data.val_json`` during training, every ``train.eval_every`` steps.

``val_evaluator(config, device)`` reads the validation json once and returns ``evaluate_model(model)``:
the LVIS mask metrics (AP, AP50, AP75, APr, APc, APf), the box AP (``bbox_AP``) and the seconds it
took. ``periodic_eval_fn`` turns that into the ``eval_fn`` that ``build_trainer`` hands to its
``EvalHook``, which logs the metrics as ``val/<name>`` to ``metrics.jsonl`` and TensorBoard.

Every rank predicts its share of the validation batches (``prediction.predict_sharded``: every
``world_size``-th of the batches one process would form, so the detections are one process's) and
all ranks evaluate the gathered whole (as ``evaluation.evaluate_distributed``), so peers never
wait for rank 0 in the next step's all-reduce; only rank 0 writes the logs. Nothing is written
to the run folder but the logs: the full evaluation with its files (``val_results.json``,
``val_metrics.json``) stays the stage's final one (``prediction.save_and_evaluate``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from ..config import Config
from ..data.lvis_json import load_lvis
from ..evaluation import evaluate, load_ground_truth
from .prediction import predict_sharded

MASK_KEYS = ("AP", "AP50", "AP75", "APr", "APc", "APf")
MAX_DETS = 300  # as the stage's final evaluation (LVIS: 300 detections per image)


def val_evaluator(config: Config, device: torch.device) -> Callable[[nn.Module], dict[str, float]]:
    """``evaluate_model(model)`` → LVIS metrics of ``model`` on ``data.val_json`` (read now, once).

    The model is put in eval mode and given back in the mode it came in (train mode, from the
    trainer). Metrics LVIS leaves undefined (−1: e.g. APr when the validation set has no rare
    class) are left out rather than logged as −1.
    """
    val = load_lvis(config.data.val_json, config.data.image_root)
    gt = load_ground_truth(config.data.val_json)

    def evaluate_model(model: nn.Module) -> dict[str, float]:
        t0 = time.perf_counter()
        was_training = model.training
        model.eval()
        try:
            gathered = predict_sharded(
                model,  # type: ignore[arg-type]  # a CascadeMaskRCNN (or its EMA copy)
                val,
                device=device,
                everywhere=True,  # every rank's share, on every rank
            )
        finally:
            model.train(was_training)
        assert gathered is not None
        results = gathered[0]
        segm = evaluate(gt, results, iou_type="segm", max_dets=MAX_DETS).metrics
        box = evaluate(gt, results, iou_type="bbox", max_dets=MAX_DETS).metrics
        metrics = {k: float(segm[k]) for k in MASK_KEYS if k in segm}
        metrics["bbox_AP"] = float(box["AP"])
        metrics = {k: v for k, v in metrics.items() if v >= 0}
        metrics["seconds"] = time.perf_counter() - t0
        return metrics

    return evaluate_model


def periodic_eval_fn(
    config: Config, device: torch.device, model: nn.Module | Callable[[], nn.Module]
) -> Callable[[], dict[str, float]] | None:
    """The ``eval_fn`` for ``build_trainer``: None when ``train.eval_every`` is null (nothing
    evaluated during training), else ``val_evaluator`` applied to ``model`` — or to what
    ``model()`` returns at each evaluation, to look up e.g. the EMA hook's weights then."""
    if config.train.eval_every is None:
        return None
    evaluate_model = val_evaluator(config, device)
    if isinstance(model, nn.Module):
        module = model
        return lambda: evaluate_model(module)
    get = model
    return lambda: evaluate_model(get())
