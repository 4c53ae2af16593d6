"""Stages "prototypes" and "teacher": Eq. 1–2 from the backbone, then the teacher trained with
one-hot, uniform or similarity-smoothed targets (Eq. 3), evaluated on the validation json.

Run folder (``run.run_dir``): config.yaml, checkpoints/, metrics.jsonl, prototypes.safetensors
(kind=similarity), nearest_classes.md, model_final.safetensors, val_results.json, val_metrics.json.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DistributedSampler, Sampler

from ..data.dataset import LvisDataset, Sample, Skipped, collate
from ..data.frequency import frequency_groups
from ..data.lvis_json import LvisData, check_image_files, load_lvis
from ..data.sampling import RepeatFactorSampler, repeat_factors
from ..engine import EMAHook, LoaderSource, build_trainer, init_run, resolve_device
from ..engine.config import Config
from ..engine.distributed import current_dist_info
from ..engine.seed import preserved_rng, seed_everything
from ..errors import InputError
from ..evaluation import evaluate
from ..io import atomic_write_bytes, atomic_write_json
from ..modeling import CascadeMaskRCNN
from .detector import (
    AugmentedDataset,
    KeyedSampler,
    build_detector,
    default_augmentation,
    images_of,
    load_detector_weights,
    load_train_data,
    predict,
    target_builder,
    training_targets,
)
from .periodic_eval import periodic_eval_fn
from .prototypes import (
    accumulate_prototypes,
    crop_embedder,
    load_prototypes,
    nearest_classes_table,
    roi_embedder,
    save_prototypes,
    smoothing_from_prototypes,
)


def _prototype_batches(
    data: LvisData, batch_size: int, device: torch.device
) -> Iterator[tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]]:
    """(images, boxes) on ``device``, labels on the CPU (the accumulator's device)."""
    dist = current_dist_info()
    dataset = LvisDataset(data, sorted(data.images)[dist.rank :: dist.world_size])
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        samples = [s for s in items if isinstance(s, Sample)]
        if samples:
            yield (
                images_of(samples, device),
                [s.boxes.as_subclass(torch.Tensor).to(device) for s in samples],
                [s.labels for s in samples],
            )


def compute_prototypes(config: Config, checkpoint: str | None = None, progress: bool = True) -> Path:
    """Eq. 1–2 from the detector's backbone trunk (its ``model.weights``, or a trained detector's
    ``checkpoint``) — not the random-init pyramid on top — for every labeled instance, as
    ``targets.instance_embedding`` says: its crop through the trunk, or the trunk's stride-16 map
    (ResNet C4, the ViT's last block) pooled inside its box.
    Writes prototypes.safetensors, nearest_classes.md and prototypes.json into the run folder."""
    data = load_train_data(config)
    # A random-init trunk's prototypes depend on its initialisation: seed it from train.seed so
    # that the same config gives the same prototypes (and the same run) every time.
    with preserved_rng():
        seed_everything(config.train.seed)
        model = build_detector(config, data)
    if checkpoint is not None:
        load_detector_weights(model, checkpoint)
    # On train.device; the prototypes (and S') come back to the CPU, where TargetBuilder uses them.
    device = resolve_device(config.train, current_dist_info())
    backbone = model.backbone.to(device).eval()
    mean = torch.tensor(backbone.image_mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(backbone.image_std, device=device).view(1, 3, 1, 1)

    def features(images: torch.Tensor) -> tuple[torch.Tensor, float]:
        return backbone.embed((images - mean) / std)

    def crop_features(crops: torch.Tensor) -> torch.Tensor:
        return backbone.embed_crops((crops - mean) / std)

    t = config.targets
    embed = (
        crop_embedder(crop_features, t.crop_size)
        if t.instance_embedding == "crop"
        else roi_embedder(features)
    )
    t0 = time.perf_counter()
    batches = _prototype_batches(data, config.data.batch_size, device)
    acc = accumulate_prototypes(batches, embed, data.num_classes)
    prototypes, counts = (v.cpu() for v in acc.compute())
    sim, smoothing, entropy = smoothing_from_prototypes(prototypes, counts, t.gamma, t.temperature)
    run_dir = Path(config.run.run_dir)
    path = save_prototypes(run_dir, prototypes, counts, sim, smoothing)
    names = [str(c.get("name", c["id"])) for c in data.categories]
    atomic_write_bytes(run_dir / "nearest_classes.md", nearest_classes_table(sim, names).encode())
    summary = {
        "source": checkpoint or config.model.weights or "random init (no pretrained backbone)",
        "instance_embedding": t.instance_embedding,
        "crop_size": t.crop_size if t.instance_embedding == "crop" else None,
        "instances": int(counts.sum()),
        "classes_without_instances": int((counts == 0).sum()),
        "gamma": t.gamma,
        "temperature": t.temperature,
        "smoothing_entropy_over_log_C": entropy,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    atomic_write_json(run_dir / "prototypes.json", summary, indent=2)
    if progress:
        print(
            f"prototypes: {summary['instances']} instances, {data.num_classes} classes "
            f"({summary['classes_without_instances']} without instances), S' entropy/log C "
            f"{entropy:.4f}, {summary['seconds']} s -> {path}"
        )
    return path


@dataclass
class TeacherResult:
    run_dir: Path
    metrics: dict[str, float]
    skipped_images: int
    seconds: float


def save_and_evaluate(model: CascadeMaskRCNN, config: Config, device: torch.device) -> dict[str, float]:
    """Write ``model_final.safetensors`` into the run folder and evaluate on ``data.val_json``."""
    from safetensors.torch import save

    run_dir = Path(config.run.run_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(run_dir / "model_final.safetensors", save(state))
    return evaluate_model(model, config.data.val_json, config.data.image_root, device, run_dir, "val")


def evaluate_model(
    model: CascadeMaskRCNN, gt_json: str, image_root: str, device: torch.device, out_dir: Path, prefix: str
) -> dict[str, float]:
    """Predict on ``gt_json``'s images, write ``{prefix}_results.json`` and ``{prefix}_metrics.json``."""
    gt = load_lvis(gt_json, image_root)
    results, skipped = predict(model, gt, device=device)
    atomic_write_json(out_dir / f"{prefix}_results.json", results)
    evaluation = evaluate(gt_json, results, iou_type="segm", max_dets=300)
    box = evaluate(gt_json, results, iou_type="bbox", max_dets=300)
    payload: dict[str, Any] = evaluation.to_json()
    payload["bbox_metrics"] = box.metrics
    payload["skipped_images"] = len(skipped)
    atomic_write_json(out_dir / f"{prefix}_metrics.json", payload, indent=2)
    return dict(evaluation.metrics)


def train_teacher(config: Config, *, progress: bool = True) -> TeacherResult:
    """Train the teacher as ``config`` says; evaluate it on ``data.val_json`` at the end (and every
    ``train.eval_every`` steps if set: ``val/AP``, … in metrics.jsonl and TensorBoard)."""
    t0 = time.perf_counter()
    dist, device = init_run(config)
    run_dir = Path(config.run.run_dir)
    data = load_train_data(config)
    _check_some_images(data)
    prototypes = None
    if config.targets.kind == "similarity":
        path = config.targets.prototypes
        if path is None:
            path = str(run_dir / "prototypes.safetensors")
            if not Path(path).is_file():
                compute_prototypes(config, progress=progress and dist.is_main)
        if not Path(path).is_file():
            raise ValueError(f"targets.prototypes: {path} is not a file")
        prototypes = load_prototypes(Path(path))
    targets = target_builder(config, data.num_classes, prototypes)

    model = build_detector(config, data).to(device)
    base = LvisDataset(data)  # images sorted by id: the indices labeled_sampler draws
    index_sampler = labeled_sampler(config, data, dist.rank, dist.world_size)
    source = LoaderSource(
        AugmentedDataset(base, default_augmentation(config), config.train.seed),
        batch_size=config.data.batch_size,
        seed=config.train.seed,
        dist=dist,
        sampler=KeyedSampler(index_sampler, len(base)),
        num_workers=config.data.workers,
        collate_fn=collate,
    )
    skipped: list[Skipped] = []

    def step_fn(m: torch.nn.Module, batch: tuple[list[Sample], list[Skipped]]) -> dict[str, torch.Tensor]:
        samples, skips = batch
        skipped.extend(skips)
        if not samples:  # every image of the batch was unreadable: a zero loss keeps ranks in step
            return {"loss_empty": sum(p.sum() * 0.0 for p in m.parameters())}  # type: ignore[dict-item]
        losses = m(images_of(samples, device), training_targets(samples, targets, device))
        assert isinstance(losses, dict)
        return losses

    def evaluated() -> torch.nn.Module:
        # With train.ema_momentum set, the averaged weights are the teacher (what EMA is kept for):
        # they are what train.eval_every evaluates, and what is saved and evaluated at the end.
        if config.train.ema_momentum is None:
            return trainer.model
        ema = trainer.get_hook("EMAHook")
        assert isinstance(ema, EMAHook)
        return ema.ema

    trainer = build_trainer(
        config,
        model=model,
        step_fn=step_fn,
        data=source,
        dist=dist,
        progress=progress,
        eval_fn=periodic_eval_fn(config, device, evaluated),  # None without train.eval_every
    )
    trainer.train()
    final = evaluated()
    assert isinstance(final, CascadeMaskRCNN)
    metrics: dict[str, float] = {}
    if dist.is_main:
        metrics = save_and_evaluate(final, config, device)
        summary = {
            "metrics": metrics,
            "skipped_images": len(skipped),
            "targets": config.targets.kind,
            "frequency_groups": _group_sizes(data),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        atomic_write_json(run_dir / "teacher.json", summary, indent=2)
    return TeacherResult(run_dir, metrics, len(skipped), time.perf_counter() - t0)


def labeled_sampler(config: Config, data: LvisData, rank: int, world_size: int) -> Sampler[int]:
    """Repeat-factor sampling (``data.repeat_factor_threshold``, the LVIS standard) or plain
    shuffling, sharded by rank: for the teacher and for the student's labeled batches alike.
    Indices are into ``LvisDataset(data)`` (images sorted by id)."""
    t = config.data.repeat_factor_threshold
    if t is None:
        return DistributedSampler(
            LvisDataset(data), num_replicas=world_size, rank=rank, shuffle=True, seed=config.train.seed
        )
    factors = repeat_factors(data, sorted(data.images), t)
    return RepeatFactorSampler(factors, seed=config.train.seed, rank=rank, world_size=world_size)


def _check_some_images(data: LvisData, sample: int = 16) -> None:
    """Open the first ``sample`` images: a wrong ``data.image_root`` should stop the run at once,
    not train for an hour on batches that are all skipped."""
    problems = check_image_files(data, sorted(data.images)[:sample])
    if problems:
        raise InputError(problems)


def _group_sizes(data: LvisData) -> dict[str, int]:
    groups = frequency_groups(data)
    return {g: sum(1 for v in groups.values() if v == g) for g in ("r", "c", "f")}


def format_metrics(metrics: dict[str, float]) -> str:
    keys = ("AP", "AP50", "AP75", "APr", "APc", "APf")
    return "  ".join(f"{k} {100 * metrics[k]:.1f}" if metrics.get(k, -1) >= 0 else f"{k} -" for k in keys)
