"""The run config's detector: data, model, targets and predictions, shared by the stages.

Shapes (one image):  H, W  image size    N  instances    D  detections    C  classes
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..data.dataset import LvisDataset, Sample, Skipped
from ..data.frequency import image_counts
from ..data.lvis_json import LvisData, load_lvis
from ..data.transforms import Augmentation, to_float_image, weak_augmentation
from ..engine.config import Config
from ..labels import similarity_smoothing_matrix, smooth_targets, uniform_smooth_targets
from ..modeling import CascadeMaskRCNN, ModelConfig, build_model


def load_train_data(config: Config) -> LvisData:
    return load_lvis(config.data.train_json, config.data.image_root)


def model_config(config: Config, num_classes: int, class_frequencies: Sequence[float]) -> ModelConfig:
    """The run config's ``model`` section as the modeling package's plain config."""
    m = config.model
    return ModelConfig(
        num_classes=num_classes,
        backbone=m.backbone,
        weights_path=m.weights,
        fpn_channels=m.fpn_channels,
        min_size=m.image_min_size,
        max_size=m.image_max_size,
        classifier=m.classifier,
        class_frequencies=tuple(float(f) for f in class_frequencies) if m.classifier == "sigmoid" else None,
        roi_batch_size_per_image=m.roi_batch_size_per_image,
        resnet_norm=m.resnet_norm,
        box_head_dim=m.box_head_dim,
        mask_head_channels=m.mask_head_channels,
        mask_head_convs=m.mask_head_convs,
        detections_per_image=m.detections_per_image,
        score_threshold=m.score_threshold,
        rpn_pre_nms_top_n_train=m.proposals_train,
        rpn_post_nms_top_n_train=m.proposals_train,
        rpn_pre_nms_top_n_test=m.proposals_test,
        rpn_post_nms_top_n_test=m.proposals_test,
    )


def build_detector(config: Config, data: LvisData) -> CascadeMaskRCNN:
    counts = image_counts(data)
    return build_model(model_config(config, data.num_classes, [counts[c] for c in data.category_ids]))


def read_model_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A detector's weights from a trainer checkpoint (``.pt``, key ``model``) or a
    ``.safetensors`` file; never unpickles code (``weights_only=True``)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--checkpoint: {p} is not a file")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: say which, not a traceback
        raise ValueError(f"--checkpoint: {p} is not a readable checkpoint ({err})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"--checkpoint: {p} holds no state dict")
    return state


def load_detector_weights(model: CascadeMaskRCNN, path: str | Path) -> None:
    state = read_model_state(path)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        missing = ", ".join(result.missing_keys[:10])
        unexpected = ", ".join(result.unexpected_keys[:10])
        raise ValueError(
            f"--checkpoint: {path} does not fit this model (missing: {missing or '-'}; unexpected: "
            f"{unexpected or '-'}); was it trained with another model config or class list?"
        )


# -- targets (Eq. 3 or its baselines) ------------------------------------------------------------


@dataclass(frozen=True)
class TargetBuilder:
    """Per-instance target vectors [N, C] from labels [N]: one-hot, uniform or similarity (Eq. 3)."""

    kind: str
    num_classes: int
    eps: float
    smoothing: torch.Tensor | None = None  # S' [C, C] for kind == "similarity"

    def __call__(self, labels: torch.Tensor) -> torch.Tensor:
        """[N] int64 → [N, C] float32 on the device of ``labels`` (S' stays where it was built)."""
        if self.kind == "onehot":
            return torch.nn.functional.one_hot(labels, self.num_classes).float()
        if self.kind == "uniform":
            return uniform_smooth_targets(labels, self.num_classes, self.eps)
        assert self.smoothing is not None
        return smooth_targets(labels, self.smoothing, self.eps).to(device=labels.device, dtype=torch.float32)


def target_builder(
    config: Config, num_classes: int, prototypes: dict[str, torch.Tensor] | None
) -> TargetBuilder:
    t = config.targets
    if t.kind != "similarity":
        return TargetBuilder(t.kind, num_classes, t.eps)
    if prototypes is None:
        raise ValueError(
            "targets.kind=similarity needs prototypes (targets.prototypes or the prototypes stage)"
        )
    if prototypes["prototypes"].shape[0] != num_classes:
        raise ValueError(
            f"targets.prototypes: has {prototypes['prototypes'].shape[0]} classes, the data has {num_classes}"
        )
    smoothing = similarity_smoothing_matrix(
        prototypes["prototypes"].double(), prototypes["counts"], t.gamma, temperature=t.temperature
    )
    return TargetBuilder(t.kind, num_classes, t.eps, smoothing)


# -- training data ---------------------------------------------------------------------------------


class KeyedSampler(Sampler[int]):
    """Wraps an index sampler so each draw also carries a key for its augmentation's seed.

    Yields ``key · n + index``: ``index`` is the item, ``key`` = epoch · 2^20 + position in the
    epoch. The key depends only on (epoch, position), so a resumed run (which skips positions)
    draws the same augmentations as an uninterrupted one, and an image repeated within an epoch
    (repeat-factor sampling) gets a different view each time.
    """

    def __init__(self, base: Sampler[int], num_items: int) -> None:
        self.base, self.num_items, self.epoch = base, num_items, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        set_epoch = getattr(self.base, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        for pos, index in enumerate(self.base):
            yield ((self.epoch << 20) + pos) * self.num_items + int(index)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]


class AugmentedDataset(Dataset[Sample | Skipped]):
    """``LvisDataset`` items under an augmentation seeded from (seed, key) — see ``KeyedSampler``."""

    def __init__(self, base: LvisDataset, augmentation: Augmentation, seed: int) -> None:
        self.base, self.augmentation, self.seed = base, augmentation, seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, keyed: int) -> Sample | Skipped:
        key, index = divmod(keyed, len(self.base))
        item = self.base[index]
        if isinstance(item, Skipped):
            return item
        g = torch.Generator().manual_seed(
            int(np.random.SeedSequence([self.seed, key, index]).generate_state(1)[0])
        )
        view = self.augmentation(item.image, boxes=item.boxes, masks=item.masks, generator=g)
        return Sample(
            image_id=item.image_id,
            image=view.image,
            boxes=view.boxes,
            labels=item.labels[view.keep],
            masks=view.masks,
        )


def training_targets(
    samples: Sequence[Sample], targets: TargetBuilder, device: torch.device
) -> list[dict[str, Any]]:
    """The model's training targets for a batch of augmented samples."""
    out = []
    for s in samples:
        out.append(
            {
                "boxes": s.boxes.as_subclass(torch.Tensor).float().to(device),
                "labels": s.labels.to(device),
                "masks": s.masks.as_subclass(torch.Tensor).to(torch.uint8).to(device),
                # Built from the loader's CPU labels (S' is on the CPU), then moved: no device sync.
                "class_targets": targets(s.labels).to(device),
            }
        )
    return out


def images_of(samples: Sequence[Sample], device: torch.device) -> list[torch.Tensor]:
    """Float images in [0, 1] on ``device`` (uint8 samples are scaled)."""
    return [to_float_image(s.image.as_subclass(torch.Tensor)).to(device) for s in samples]


def default_augmentation(config: Config) -> Augmentation:
    """The teacher's training views: flip and small scale jitter (weak), at the configured size."""
    return weak_augmentation(short_side=config.data.image_size)


# -- predictions as COCO results --------------------------------------------------------------------


def to_results(
    detections: Sequence[dict[str, torch.Tensor]], image_ids: Sequence[int], category_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """COCO results (bbox XYWH, RLE masks thresholded at 0.5, score) from model outputs."""
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
    finally:
        model.train(was_training)
    return results, skipped
