"""Stage "student": labeled images plus unlabeled images with the teacher's pseudo-labels.

Each step takes a batch of labeled images (weak views, targets as for the teacher) and a batch of
unlabeled images. The teacher sees a weak view of each unlabeled image; its detections become
pseudo-labels (one-hot, soft, or calibrated by Eq. 5) mapped into the strong view the student
sees. loss = supervised + w · unsupervised, each term logged apart (``sup_*``, ``unsup_*``).

The teacher is frozen, or an EMA of the student (its EMA hook writes into the teacher module).
Pseudo-labels are made online per batch; nothing dense over the pool is ever stored.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DistributedSampler

from ..config import Config, StudentConfig
from ..data.dataset import LvisDataset, collate
from ..data.frequency import instance_counts
from ..data.lvis_json import LvisData
from ..data.pool_dataset import PoolDataset
from ..data.pool_index import PoolIndex, index_folder, open_index
from ..data.transforms import Photometric
from ..engine import DistInfo, LoaderSource, Trainer, build_trainer, init_run
from ..engine.distributed import all_gather_objects
from ..engine.hooks import EMAHook
from ..engine.main_rank import on_main
from ..errors import InputError
from ..io import atomic_write_json
from ..labels.logit_adjustment import labeled_count_weights
from ..modeling import CascadeMaskRCNN
from .data import (
    AugmentedDataset,
    KeyedSampler,
    UnlabeledViews,
    collate_unlabeled,
    default_augmentation,
    labeled_sampler,
    load_train_data,
)
from .delta import load_delta
from .detector import build_detector, load_detector_weights
from .periodic_eval import periodic_eval_fn
from .prediction import save_and_evaluate
from .prototypes import load_prototypes
from .pseudo_labels import PseudoLabelConfig
from .stages import file_hash
from .student_step import TeacherStudentStep
from .targets import target_builder


class PairedSource:
    """Labeled batches zipped with unlabeled ones; the unlabeled stream's position follows from the
    labeled one (epoch · batches per epoch + start), so a resumed run sees the same pairs."""

    def __init__(self, labeled: LoaderSource, unlabeled: LoaderSource) -> None:
        if len(unlabeled) < 1:
            raise InputError("data.unlabeled_json: fewer unlabeled images than one unlabeled batch")
        self.labeled, self.unlabeled = labeled, unlabeled

    def __len__(self) -> int:
        return len(self.labeled)

    def batches(self, epoch: int, start: int) -> Iterator[Any]:
        u_epoch, u_start = divmod(epoch * len(self.labeled) + start, len(self.unlabeled))
        stream = self.unlabeled.batches(u_epoch, u_start)
        for lab in self.labeled.batches(epoch, start):
            try:
                unl = next(stream)
            except StopIteration:
                u_epoch += 1
                stream = self.unlabeled.batches(u_epoch, 0)
                unl = next(stream)
            yield lab, unl


def pseudo_label_config(s: StudentConfig) -> PseudoLabelConfig:
    return PseudoLabelConfig(
        mode=s.pseudo_labels,
        box_threshold=s.box_threshold,
        top_k=s.top_k,
        lam=s.lam,
        support=s.support,
        threshold_on=s.threshold_on,
        ignore_threshold=s.ignore_threshold,
        renormalize=s.renormalize,
    )


def class_weights(data: LvisData, alpha: float) -> torch.Tensor | None:
    """[C] `labels.labeled_count_weights` of ``data``'s objects per class (in the model's
    class order, ``data.category_ids``); None at α = 0."""
    if alpha == 0:
        return None
    counts = instance_counts(data)
    return labeled_count_weights(torch.tensor([float(counts[c]) for c in data.category_ids]), alpha)


@dataclass
class StudentResult:
    run_dir: Path
    metrics: dict[str, float]
    seconds: float


@dataclass
class StudentRun:
    """A student ready to train (``build_student``): its trainer and its step (which holds the
    teacher and counts the pseudo-labels), this process's rank and device."""

    config: Config
    trainer: Trainer
    step: TeacherStudentStep
    dist: DistInfo
    device: torch.device


def train_student(config: Config, *, progress: bool = True) -> StudentResult:
    """Train the student as ``config.student`` says; evaluate it on ``data.val_json`` at the end.

    Under torchrun every rank calls it: the student trains with DDP (each rank its own labeled and
    unlabeled shard, the teacher's pseudo-labels made on its own unlabeled batch), the ranks share
    the evaluation's prediction, rank 0 writes the files, and every rank returns the same metrics."""
    t0 = time.perf_counter()
    run = build_student(config, progress=progress)
    run.trainer.train()
    final = run.trainer.model
    assert isinstance(final, CascadeMaskRCNN)
    metrics = save_and_evaluate(final, run.config, run.device)  # every rank: the prediction is shared
    s = run.config.student
    assert s is not None
    # Pseudo-labels kept per unlabeled image, over every rank's batches.
    counts = all_gather_objects((sum(run.step.pseudo_boxes), len(run.step.pseudo_boxes)))
    boxes, batches = sum(c[0] for c in counts), sum(c[1] for c in counts)
    summary = {
        "metrics": metrics,
        "pseudo_labels": s.pseudo_labels,
        "pseudo_boxes_per_unlabeled_image": boxes / max(1, batches * s.unlabeled_batch_size),
        "processes": run.dist.world_size,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    run_dir = Path(run.config.run.run_dir)
    on_main(lambda: atomic_write_json(run_dir / "student.json", summary, indent=2))
    return StudentResult(run_dir, metrics, time.perf_counter() - t0)


def open_pool(config: Config) -> PoolIndex:
    """``data.unlabeled_json``'s images as memory-mapped columns (D101): rank 0 reads the json
    once into ``run.run_dir/pool_index/<its hash>/`` (kept for a resumed run, rebuilt when the
    json changes); every rank, and every DataLoader worker, maps that folder.

    Raises:
        InputError: the json's problems, naming file, record and field (every rank raises it).
    """
    assert config.data.unlabeled_json is not None
    source = config.data.unlabeled_json
    cache = Path(config.run.run_dir) / "pool_index"
    folder = on_main(lambda: str(index_folder(source, cache, _json_hash(source))))
    return open_index(Path(folder))


def _json_hash(path: str) -> str:
    """The json's SHA-256; a file that cannot be read is read by ``read_pool`` for its message."""
    try:
        return file_hash(path)
    except OSError:
        return "unreadable"


def build_student(config: Config, *, progress: bool = True) -> StudentRun:
    """The student's trainer as ``config.student`` says (resumed from the run folder's last
    checkpoint with ``run.resume``), after joining torchrun's process group if there is one.

    Raises:
        InputError: no student section, no teacher checkpoint, no unlabeled json, a calibrated
            student without Δ, or a Δ for another number of classes.
    """
    s = config.student
    if s is None:
        raise InputError("student: the config has no student section")
    if s.teacher_checkpoint is None:
        raise InputError("student.teacher_checkpoint: the teacher's model_final.safetensors is required")
    config = config.model_copy(update={"train": s.schedule(config.train)})
    if config.data.unlabeled_json is None:
        raise InputError("data.unlabeled_json: the student needs unlabeled images")
    if s.pseudo_labels == "calibrated" and s.delta is None:
        raise InputError(
            "student.delta: pseudo_labels=calibrated needs delta.safetensors (`tailteacher calibrate`)"
        )
    dist, device = init_run(config.train)
    data = load_train_data(config)
    delta = None
    if s.pseudo_labels == "calibrated":
        assert s.delta is not None
        delta = load_delta(s.delta, data, s.delta_shrinkage)
    prototypes = load_prototypes(Path(config.targets.prototypes)) if config.targets.prototypes else None
    targets = target_builder(config, data.num_classes, prototypes)

    teacher = build_detector(config, data)
    load_detector_weights(teacher, s.teacher_checkpoint)
    teacher = teacher.to(device).eval().requires_grad_(False)
    # The student starts from the teacher's weights: the CPU benchmark cannot afford a second
    # training from scratch, and a self-training student usually starts there (docs/decisions.md).
    student = copy.deepcopy(teacher).requires_grad_(True).train()

    lab_base = LvisDataset(data)
    labeled = LoaderSource(
        AugmentedDataset(lab_base, default_augmentation(config), config.train.seed),
        batch_size=config.data.batch_size,
        seed=config.train.seed,
        dist=dist,
        # The teacher's sampling (repeat factors): without it rare classes all but vanish from the
        # labeled batches of a short student run (measured on demo: APr 20.0 → 2.6 in 150 steps).
        sampler=KeyedSampler(
            labeled_sampler(config, data, dist.rank, dist.world_size),
            len(lab_base),
            dist.rank,
            dist.world_size,
        ),
        num_workers=config.data.workers,
        collate_fn=collate,
    )
    unl_base = PoolDataset(open_pool(config), config.data.image_root)
    unlabeled = LoaderSource(
        UnlabeledViews(
            unl_base,
            config.train.seed,
            config.data.image_size,
            Photometric(**s.strong_augmentation.model_dump()),
        ),
        batch_size=s.unlabeled_batch_size,
        seed=config.train.seed + 1,
        dist=dist,
        sampler=KeyedSampler(
            DistributedSampler(
                unl_base, num_replicas=dist.world_size, rank=dist.rank, seed=config.train.seed
            ),
            len(unl_base),
            dist.rank,
            dist.world_size,
        ),
        num_workers=config.data.workers,
        collate_fn=collate_unlabeled,
    )
    step = TeacherStudentStep(
        teacher=teacher,
        class_targets=targets,
        pseudo_labels=pseudo_label_config(s),
        delta=delta,
        unsup_weight=s.unsup_weight,
        unsup_box_loss=s.unsup_box_loss,
        unsup_mask_loss=s.unsup_mask_loss,
        device=device,
        class_weights=class_weights(data, s.logit_adjustment),
    )

    hooks = [EMAHook(student, s.teacher_momentum, target=teacher)] if s.teacher == "ema" else []
    trainer = build_trainer(
        config.train,
        config.run,
        record=config,
        model=student.to(device),
        step_fn=step,
        data=PairedSource(labeled, unlabeled),
        dist=dist,
        extra_hooks=hooks,
        progress=progress,
        eval_fn=periodic_eval_fn(config, device, student),  # None without train.eval_every
    )
    return StudentRun(config, trainer, step, dist, device)
