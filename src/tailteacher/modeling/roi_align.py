"""RoIAlign as two small matrix products per image, for small feature maps on the CPU (D119).

RoIAlign (Mask R-CNN) averages, in each output bin, bilinear samples of the feature map on a
regular grid. Bilinear interpolation is separable and the grid is a product of a row grid and a
column grid, so the whole pooling of one RoI is ``W_y · F · W_xᵀ`` with ``W_y`` [out_h, H] and
``W_x`` [out_w, W] holding each bin's averaged interpolation weights. ``roi_align`` here computes
those weights exactly as torchvision's CPU kernel places its samples (the same grid, the same
clamping at the borders, zero for a sample outside ``[-1, size]``), so its output equals
``torchvision.ops.roi_align``'s up to float rounding, and autograd gives the same gradient.

Why: torchvision's CPU backward of RoIAlign was ~60 % of a training step of our cascade at 96 px
(BENCHMARKS.md, "Detector"); as matrix products on maps of a few dozen pixels a side the forward
and backward are several times faster. On large maps the dense product costs more than
torchvision's sparse gather, and on GPUs torchvision's kernel is fast: ``MultiScaleRoIAlign``
here uses the matrix form only on the CPU for maps of at most ``MAX_MATMUL_AREA`` cells and
torchvision's op everywhere else.
"""

from __future__ import annotations

import math

import torch
import torchvision
from torch import Tensor
from torchvision.ops.poolers import LevelMapper

#: The largest feature map (H·W cells) pooled by matrix products on the CPU; above it
#: torchvision's kernel is used (`benchmarks/bench_roi_align.py`, BENCHMARKS.md).
MAX_MATMUL_AREA = 48 * 48


def _axis_weights(start: Tensor, size: Tensor, bins: int, grid: Tensor, length: int) -> Tensor:
    """Each bin's averaged bilinear weights along one axis.

    Args:
        start: [K] the RoI's first coordinate on the feature map (after scale and offset).
        size: [K] the RoI's extent on the feature map.
        bins: the output size along this axis.
        grid: [K] samples per bin along this axis (≤ 0: none, the bin is 0).
        length: the feature map's size along this axis.

    Returns:
        [K, bins, length]: row ``b`` of RoI ``k`` sums to the share of bin ``b``'s samples that fall
        inside ``[-1, length]`` (torchvision's rule for an empty sample).
    """
    k = start.shape[0]
    dtype, device = start.dtype, start.device
    g_max = max(int(grid.max()), 1) if k else 1
    bin_size = size / bins
    b = torch.arange(bins, device=device, dtype=dtype)
    i = torch.arange(g_max, device=device, dtype=dtype)
    g = grid.to(dtype)  # ≤ 0 (an aligned box of no extent, adaptive grid): no sample, as torchvision
    # the sample coordinates as torchvision's kernel computes them: [K, bins, g_max]
    coord = (
        start[:, None, None]
        + b[None, :, None] * bin_size[:, None, None]
        + (i[None, None, :] + 0.5) * bin_size[:, None, None] / g.clamp(min=1.0)[:, None, None]
    )
    used = i[None, None, :] < g[:, None, None]
    inside = (coord >= -1.0) & (coord <= length) & used  # False for NaN coordinates too
    coord = torch.where(inside, coord, torch.zeros_like(coord)).clamp(min=0.0)
    low = coord.floor().to(torch.int64)
    at_end = low >= length - 1
    low = torch.where(at_end, torch.full_like(low, length - 1), low)
    high = torch.where(at_end, low, low + 1)
    coord = torch.where(at_end, low.to(dtype), coord)
    frac = coord - low.to(dtype)
    keep = inside.to(dtype) / g.clamp(min=1.0)[:, None, None]
    weights = torch.zeros(k, bins, length, dtype=dtype, device=device)
    weights.scatter_add_(2, low, (1.0 - frac) * keep)
    weights.scatter_add_(2, high, frac * keep)
    return weights


def roi_align(
    input: Tensor,
    rois: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoIAlign by matrix products; the arguments and result of ``torchvision.ops.roi_align``.

    Args:
        input: [N, C, H, W] feature maps.
        rois: [K, 5] rows ``(batch index, x1, y1, x2, y2)`` in input-image pixels.
        output_size: ``(out_h, out_w)``.
        spatial_scale: feature-map cells per input pixel (1/stride).
        sampling_ratio: samples per bin along each axis; ≤ 0 = ``ceil(roi size / bins)`` per RoI.
        aligned: shift the box by half a cell (Detectron2's ``ROIAlignV2``).

    Returns:
        [K, C, out_h, out_w] in ``input``'s dtype, computed in float32 for half-precision inputs
        and outside autocast (as torchvision's autocast wrapper does); no gradient reaches
        ``rois``. Memory: one [k, C, out_h, W] intermediate per image with k RoIs, so use it on
        small maps (``MAX_MATMUL_AREA``).
    """
    with torch.autocast(input.device.type, enabled=False):
        work = input if input.dtype == torch.float64 else input.float()
        return _roi_align(work, rois.detach(), output_size, spatial_scale, sampling_ratio, aligned).to(
            input.dtype
        )


def _roi_align(
    input: Tensor,
    rois: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    out_h, out_w = output_size
    _, c, h, w = input.shape
    k = rois.shape[0]
    out = input.new_zeros(k, c, out_h, out_w)
    if k == 0:
        return out
    r = rois.to(input.dtype)
    offset = 0.5 if aligned else 0.0
    x1 = r[:, 1] * spatial_scale - offset
    y1 = r[:, 2] * spatial_scale - offset
    roi_w = r[:, 3] * spatial_scale - offset - x1
    roi_h = r[:, 4] * spatial_scale - offset - y1
    if not aligned:
        roi_w = roi_w.clamp(min=1.0)
        roi_h = roi_h.clamp(min=1.0)
    if sampling_ratio > 0:
        grid_h = torch.full((k,), sampling_ratio, device=input.device, dtype=torch.int64)
        grid_w = grid_h
    else:
        grid_h = torch.ceil(roi_h / out_h).to(torch.int64)
        grid_w = torch.ceil(roi_w / out_w).to(torch.int64)
    wy = _axis_weights(y1, roi_h, out_h, grid_h, h)  # [K, out_h, H]
    wx = _axis_weights(x1, roi_w, out_w, grid_w, w)  # [K, out_w, W]
    image_of = r[:, 0].to(torch.int64)
    for image in torch.unique(image_of).tolist():
        idx = torch.nonzero(image_of == image).flatten()
        rows = torch.einsum("kih,chw->kciw", wy[idx], input[image])
        out[idx] = torch.einsum("kciw,kjw->kcij", rows, wx[idx])
    return out


def _infer_scale(feature: Tensor, image_size: tuple[int, int]) -> float:
    """The feature map's stride as a power of two (torchvision's rule: from its height)."""
    return float(2 ** round(math.log2(feature.shape[-2] / image_size[0])))


class MultiScaleRoIAlign(torchvision.ops.MultiScaleRoIAlign):  # type: ignore[misc]  # untyped
    """``torchvision.ops.MultiScaleRoIAlign`` (FPN level per box, Eq. 1 of the FPN paper) whose
    small CPU maps are pooled by ``roi_align`` above; larger maps and non-CPU tensors go to
    torchvision's kernel. Same constructor, forward and result (up to float rounding)."""

    def forward(
        self,
        x: dict[str, Tensor],
        boxes: list[Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> Tensor:
        """Args: ``x`` the named feature maps [N, C, H_l, W_l]; ``boxes`` per image [K_i, 4] in
        image pixels; ``image_shapes`` each image's (height, width). Returns [ΣK_i, C, *output_size]."""
        features = [v for name, v in x.items() if name in self.featmap_names]
        if not image_shapes:
            raise ValueError("image_shapes: expected one (height, width) per image, got none")
        largest = (max(s[0] for s in image_shapes), max(s[1] for s in image_shapes))
        scales = [_infer_scale(f, largest) for f in features]
        rois = torch.cat(
            [torch.cat([torch.full_like(b[:, :1], i), b], dim=1) for i, b in enumerate(boxes)], dim=0
        )
        if len(features) == 1:
            levels = torch.zeros(rois.shape[0], dtype=torch.int64, device=rois.device)
        else:
            k_min = round(-math.log2(scales[0]))
            k_max = round(-math.log2(scales[-1]))
            mapper = LevelMapper(k_min, k_max, self.canonical_scale, self.canonical_level)
            levels = mapper(boxes)
        first = features[0]
        result = first.new_zeros((rois.shape[0], first.shape[1], *self.output_size))
        for level, (feature, scale) in enumerate(zip(features, scales, strict=True)):
            idx = torch.nonzero(levels == level).flatten()
            if idx.numel() == 0:
                continue
            small = feature.device.type == "cpu" and feature.shape[-2] * feature.shape[-1] <= MAX_MATMUL_AREA
            pool = roi_align if small else torchvision.ops.roi_align
            pooled = pool(feature, rois[idx], self.output_size, scale, self.sampling_ratio, False)
            result[idx] = pooled.to(result.dtype)
        return result
