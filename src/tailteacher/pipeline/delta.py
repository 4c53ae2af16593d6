"""Δ for Eq. 5: the calibrate stage's ``delta.safetensors``, shrunk toward each class's frequency
group where the class has few held-out detections (``labels.shrink_ccece``, D100).

The file holds ``delta`` [C] float32 (Eq. 4 per class, categories sorted by id) and ``count`` [C]
(held-out detections behind each Δ_c; written since D100).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.frequency import frequency_groups
from ..data.lvis_json import LvisData
from ..errors import InputError
from ..labels import shrink_ccece

_GROUP_INDEX = {"r": 0, "c": 1, "f": 2}


def load_delta(path: str | Path, data: LvisData, shrinkage: float) -> torch.Tensor:
    """Δ [C] float32 for Eq. 5, in ``data``'s class order.

    Args:
        path: a ``delta.safetensors`` written by the calibrate stage.
        data: the training data (its categories give C and the frequency groups).
        shrinkage: κ ≥ 0 in detections (``student.delta_shrinkage``); 0 returns Δ as measured.

    Raises:
        InputError: the file is missing or unreadable, has no ``delta``, another number of
            classes, or (κ > 0) no ``count``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise InputError(f"student.delta: cannot read {path}: {e}") from None
    delta = tensors.get("delta")
    if delta is None or delta.dim() != 1:
        raise InputError(f"student.delta: {path} has no 1-D 'delta' (see `tailteacher calibrate`)")
    if delta.shape[0] != data.num_classes:
        raise InputError(f"student.delta: {path} has {delta.shape[0]} classes, the data {data.num_classes}")
    if shrinkage == 0:
        return delta.float()
    count = tensors.get("count")
    if count is None or count.shape != delta.shape:
        raise InputError(
            f"student.delta: {path} has no per-class 'count' (written by calibrate before D100); "
            "run the calibrate stage again, or set student.delta_shrinkage: 0"
        )
    groups_by_id = frequency_groups(data)
    groups = torch.tensor([_GROUP_INDEX[groups_by_id[cid]] for cid in data.category_ids], dtype=torch.long)
    return shrink_ccece(delta.double(), count, groups, shrinkage).float()
