"""The run config's detector: built from the ``model`` section for the data's classes, and a
trained detector's weights loaded into it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..config import Config
from ..data.frequency import image_counts
from ..data.lvis_json import LvisData
from ..errors import InputError
from ..modeling import CascadeMaskRCNN, ModelConfig, build_model
from ..modeling.checkpoint import read_state_dict


def model_config(config: Config, num_classes: int, class_frequencies: Sequence[float]) -> ModelConfig:
    """The run config's ``model`` section for the data's classes (frequencies: sigmoid classifier only)."""
    frequencies = class_frequencies if config.model.classifier == "sigmoid" else None
    return config.model.with_classes(num_classes, frequencies)


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
        raise InputError(
            f"--checkpoint: {path} does not fit this model (missing: {missing or '-'}; unexpected: "
            f"{unexpected or '-'}); was it trained with another model config or class list?"
        )
