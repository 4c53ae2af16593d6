"""Stage "teacher": the detector trained with one-hot, uniform or similarity-smoothed targets
(Eq. 3), evaluated on the validation json. For kind=similarity without ``targets.prototypes``, the
prototypes stage runs first, into the same folder.

Run folder (``run.run_dir``): config.yaml, checkpoints/, metrics.jsonl, prototypes.safetensors
(kind=similarity), nearest_classes.md, model_final.safetensors, val_results.json, val_metrics.json.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config
from ..data.dataset import LvisDataset, Sample, Skipped, collate
from ..data.frequency import frequency_groups
from ..data.lvis_json import LvisData, check_image_files
from ..data.skips import check_skipped
from ..engine import EMAHook, LoaderSource, build_trainer, init_run
from ..engine.distributed import all_gather_objects
from ..engine.main_rank import on_main
from ..errors import InputError
from ..io import atomic_write_json
from ..modeling import CascadeMaskRCNN
from .data import (
    AugmentedDataset,
    KeyedSampler,
    default_augmentation,
    images_of,
    labeled_sampler,
    load_train_data,
)
from .detector import build_detector
from .periodic_eval import periodic_eval_fn
from .prediction import save_and_evaluate
from .prototypes import compute_prototypes, load_prototypes
from .targets import target_builder, training_targets


@dataclass
class TeacherResult:
    run_dir: Path
    metrics: dict[str, float]
    skipped_images: int
    seconds: float


def train_teacher(config: Config, *, progress: bool = True) -> TeacherResult:
    """Train the teacher as ``config`` says; evaluate it on ``data.val_json`` at the end (and every
    ``train.eval_every`` steps if set: ``val/AP``, … in metrics.jsonl and TensorBoard).

    Under torchrun every rank calls it: DDP trains, the ranks share the evaluation's prediction,
    rank 0 writes the files, and every rank returns the same metrics."""
    t0 = time.perf_counter()
    dist, device = init_run(config.train)
    run_dir = Path(config.run.run_dir)
    data = load_train_data(config)
    _check_some_images(data)
    prototypes = None
    if config.targets.kind == "similarity":
        path = config.targets.prototypes
        if path is None:
            path = str(run_dir / "prototypes.safetensors")
            if on_main(lambda: not Path(path).is_file()):  # every rank computes, or none
                compute_prototypes(config, progress=progress and dist.is_main)
        if not Path(path).is_file():
            raise InputError(f"targets.prototypes: {path} is not a file")
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
        sampler=KeyedSampler(index_sampler, len(base), dist.rank, dist.world_size),
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
        config.train,
        config.run,
        record=config,
        model=model,
        step_fn=step_fn,
        data=source,
        dist=dist,
        progress=progress,
        eval_fn=periodic_eval_fn(config, device, evaluated),  # None without train.eval_every
    )
    trainer.train()
    # Every skipped file is listed in teacher.json; too many of them stop the stage (data.skips).
    # Under torchrun each rank skipped its own; all ranks check the whole list, so all agree.
    skipped = [s for part in all_gather_objects(skipped) for s in part]
    skips = check_skipped(skipped, len(base), config.data.max_skipped_fraction, config.data.train_json)
    final = evaluated()
    assert isinstance(final, CascadeMaskRCNN)
    metrics = save_and_evaluate(final, config, device)  # every rank: the prediction is shared
    summary = {
        "metrics": metrics,
        "skipped_images": skips,
        "nonfinite_steps_skipped": trainer.nonfinite_steps,
        "targets": config.targets.kind,
        "frequency_groups": _group_sizes(data),
        "processes": dist.world_size,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    on_main(lambda: atomic_write_json(run_dir / "teacher.json", summary, indent=2))
    return TeacherResult(run_dir, metrics, skips["count"], time.perf_counter() - t0)


def _check_some_images(data: LvisData, sample: int = 16) -> None:
    """Open the first ``sample`` images: a wrong ``data.image_root`` should stop the run at once,
    not train for an hour on batches that are all skipped."""
    problems = check_image_files(data, sorted(data.images)[:sample])
    if problems:
        raise InputError(problems)


def _group_sizes(data: LvisData) -> dict[str, int]:
    groups = frequency_groups(data)
    return {g: sum(1 for v in groups.values() if v == g) for g in ("r", "c", "f")}
