"""The class-agnostic mask head, its targets and its loss.

Shapes:
    M  foreground RoIs      G  ground-truth instances of an image      F  pyramid channels
    S  RoIAlign output (14)      2S  mask resolution (28)      H, W  image size

Class-agnostic (one mask channel): with 1,203 LVIS classes a per-class output layer would cost
C×28×28 logits per RoI for one used channel; Cascade Mask R-CNN on LVIS works well either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align


class MaskHead(nn.Module):
    """3×3 convs with ReLU, a 2× deconvolution, and a 1×1 predictor: [M, F, S, S] → [M, 1, 2S, 2S]."""

    def __init__(self, *, in_channels: int, conv_channels: Sequence[int]) -> None:
        """
        Args:
            in_channels: F.
            conv_channels: width of each 3×3 convolution (e.g. (64, 64)); the deconvolution keeps the last.
        """
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for c in conv_channels:
            layers += [nn.Conv2d(width, c, 3, padding=1), nn.ReLU(inplace=True)]
            width = c
        self.convs = nn.Sequential(*layers)
        self.upsample = nn.ConvTranspose2d(width, width, 2, stride=2)
        self.predictor = nn.Conv2d(width, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.predictor.weight, std=0.001)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """[M, F, S, S] → mask logits [M, 1, 2S, 2S]."""
        x = F.relu(self.upsample(self.convs(pooled)))
        out: torch.Tensor = self.predictor(x)
        return out


@torch.no_grad()
def mask_targets(
    gt_masks: torch.Tensor, matched: torch.Tensor, rois: torch.Tensor, size: int
) -> torch.Tensor:
    """Crop and resize each RoI's matched ground-truth mask: [M, size, size] in [0, 1].

    Args:
        gt_masks: [G, H, W] (uint8/bool/float) in the coordinates of ``rois``.
        matched: [M] int64 index of each RoI's ground truth.
        rois: [M, 4] XYXY.
        size: 2S.

    The bilinear samples are kept as soft targets (the fraction of the cell inside the mask).
    """
    if rois.shape[0] == 0:
        return rois.new_zeros((0, size, size))
    boxes = torch.cat([matched.to(rois.dtype)[:, None], rois], dim=1)
    crops: torch.Tensor = roi_align(
        gt_masks[:, None].to(rois.dtype), boxes, (size, size), spatial_scale=1.0, aligned=True
    )
    return crops[:, 0].clamp(0, 1)


def mask_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-pixel BCE averaged per mask, then the weighted mean over masks.

    Args:
        logits: [M, 1, 2S, 2S].
        targets: [M, 2S, 2S] in [0, 1].
        weights: [M] per-instance weights.

    Returns:
        A scalar; 0 (still connected to ``logits``) when M = 0.
    """
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    per_mask = F.binary_cross_entropy_with_logits(logits[:, 0], targets, reduction="none").mean(dim=(1, 2))
    return (per_mask * weights.detach()).sum() / logits.shape[0]
