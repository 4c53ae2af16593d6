"""The run config's detector: built from the ``model`` section for the data's classes, and a
trained detector's weights loaded into it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..data.frequency import image_counts
from ..data.lvis_json import LvisData
from ..engine.config import Config
from ..modeling import CascadeMaskRCNN, ModelConfig, build_model
from ..modeling.checkpoint import read_state_dict


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
    """The ``model`` section's detector for ``data``'s classes (frequencies: image counts)."""
    counts = image_counts(data)
    return build_model(model_config(config, data.num_classes, [counts[c] for c in data.category_ids]))


def load_detector_weights(model: CascadeMaskRCNN, path: str | Path) -> None:
    """A trained detector's weights (``model_final.safetensors`` or a trainer checkpoint) into
    ``model``; a file that does not fit the model exactly is a ``ValueError``."""
    state = read_state_dict(path, source="--checkpoint")
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        missing = ", ".join(result.missing_keys[:10])
        unexpected = ", ".join(result.unexpected_keys[:10])
        raise ValueError(
            f"--checkpoint: {path} does not fit this model (missing: {missing or '-'}; unexpected: "
            f"{unexpected or '-'}); was it trained with another model config or class list?"
        )
