"""A plain ViT (timm) with a ViTDet-style simple feature pyramid.

Shapes:
    N  images      H, W  padded batch size (multiples of 32)      D  ViT width      F  pyramid channels

The last block's tokens form one [N, D, H/16, W/16] map; deconvolutions make strides 4 and 8,
max-pooling stride 32, and each level gets a 1×1 then a 3×3 convolution to F channels with
LayerNorm (Li et al., ViTDet). A max-pooled stride-64 "pool" level feeds the RPN, as with the FPN.
The paper's EVA-02-L is ``eva02_large_patch14_448.mim_m38m`` with its patch embedding at 16
(the paper's "p14to16"; timm resamples a patch-14 checkpoint's kernel when it is loaded).
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable
from typing import cast

import timm
import torch
import torch.nn.functional as F
from timm.layers.norm import LayerNorm2d
from torch import nn

from .backbones import DetectionBackbone

#: The ViT's patch size: the pyramid's middle level must have stride 16.
PATCH_SIZE = 16

_DROPPED_PREFIXES = ("head.", "fc_norm.", "norm.", "attn_pool.", "mask_token", "lm_head.")


class SimpleFeaturePyramid(nn.Module):
    """[N, D, H/16, W/16] → levels at strides 4, 8, 16, 32 (and 64), each [N, F, ·, ·]."""

    def __init__(self, *, in_channels: int, out_channels: int) -> None:
        super().__init__()
        d = in_channels
        self.up4 = nn.Sequential(
            nn.ConvTranspose2d(d, d // 2, 2, stride=2),
            LayerNorm2d(d // 2),
            nn.GELU(),
            nn.ConvTranspose2d(d // 2, d // 4, 2, stride=2),
        )
        self.up8 = nn.ConvTranspose2d(d, d // 2, 2, stride=2)
        level_in = (d // 4, d // 2, d, d)
        self.outputs = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c, out_channels, 1, bias=False),
                LayerNorm2d(out_channels),
                nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                LayerNorm2d(out_channels),
            )
            for c in level_in
        )

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        levels = (self.up4(x), self.up8(x), x, F.max_pool2d(x, 2, stride=2))
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        for i, (level, head) in enumerate(zip(levels, self.outputs, strict=True)):
            out[str(i)] = head(level)
        out["pool"] = F.max_pool2d(out["3"], 1, stride=2)
        return out


class ViTPyramid(DetectionBackbone):
    """A timm ViT trunk (features of its last block at stride 16) + ``SimpleFeaturePyramid``."""

    def __init__(
        self,
        *,
        trunk: nn.Module,
        pyramid: SimpleFeaturePyramid,
        out_channels: int,
        image_mean: tuple[float, float, float],
        image_std: tuple[float, float, float],
    ) -> None:
        """
        Args:
            trunk: a timm ViT with ``forward_intermediates`` (e.g. ``VisionTransformer``, ``Eva``),
                patch size 16, built with ``dynamic_img_size=True``, pruned after its last block.
            pyramid: the simple feature pyramid over the trunk's width.
            out_channels: F.
            image_mean, image_std: the trunk's normalisation.
        """
        super().__init__()
        self.trunk = trunk
        self.pyramid = pyramid
        self.out_channels = out_channels
        self.image_mean = image_mean
        self.image_std = image_std

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        pyramid: OrderedDict[str, torch.Tensor] = self.pyramid(self.embed(images)[0])
        return pyramid

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, float]:
        intermediates = cast(Callable[..., list[torch.Tensor]], self.trunk.forward_intermediates)
        last = intermediates(images, indices=1, output_fmt="NCHW", intermediates_only=True)[-1]
        return last, 16.0

    def prepare_checkpoint(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # timm's own converter for this architecture (the one its pretrained loading uses): it maps
        # original EVA/BEiT/DINOv2 key names and resamples the position embedding and patch kernel.
        module = sys.modules.get(type(self.trunk).__module__)
        convert = getattr(module, "checkpoint_filter_fn", None)
        if convert is None:
            return state_dict
        converted: dict[str, torch.Tensor] = convert(state_dict, self.trunk)
        return converted

    def ignored_checkpoint_keys(self, key: str) -> bool:
        # The classifier, final norm and pretraining-only tokens that the pruned trunk dropped.
        return key.startswith(_DROPPED_PREFIXES)


def vit_pyramid(name: str, *, out_channels: int, img_size: int) -> ViTPyramid:
    """A random-init timm ViT (``pretrained=False``: never downloads) with a simple feature pyramid.

    Args:
        name: a timm ViT name, e.g. ``vit_tiny_patch16_224`` or ``eva02_large_patch14_448.mim_m38m``.
        out_channels: F.
        img_size: the nominal input size (position-embedding grid of img_size/16 per side).
    """
    if not timm.is_model(name):
        raise ValueError(f"backbone: {name!r} is neither a ResNet (resnet18/34/50/101) nor a timm model name")
    trunk = timm.create_model(
        name,
        pretrained=False,
        num_classes=0,
        img_size=img_size,
        patch_size=PATCH_SIZE,
        dynamic_img_size=True,
    )
    if not hasattr(trunk, "forward_intermediates") or not hasattr(trunk, "prune_intermediate_layers"):
        raise ValueError(f"backbone: timm model {name!r} has no forward_intermediates; use a plain ViT")
    # Drop the final norm and classifier, which the detector never uses (they would get no gradient).
    prune = cast(Callable[..., object], trunk.prune_intermediate_layers)
    prune(indices=1, prune_norm=True, prune_head=True)
    width = int(getattr(trunk, "num_features", 0) or getattr(trunk, "embed_dim", 0))
    if width <= 0 or width % 4:
        raise ValueError(f"backbone: timm model {name!r} has width {width}; expected a multiple of 4")
    cfg = getattr(trunk, "pretrained_cfg", {}) or {}
    mean = tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225)))
    return ViTPyramid(
        trunk=trunk,
        pyramid=SimpleFeaturePyramid(in_channels=width, out_channels=out_channels),
        out_channels=out_channels,
        image_mean=(mean[0], mean[1], mean[2]),
        image_std=(std[0], std[1], std[2]),
    )
