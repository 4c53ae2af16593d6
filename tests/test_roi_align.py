"""RoIAlign as matrix products (D119) against torchvision's kernel, the reference."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torchvision

from tailteacher.modeling import roi_align as matmul


def _random_rois(n_images: int, k: int, extent: float, seed: int) -> torch.Tensor:
    """[k, 5] boxes of every size, some reaching past the image, a few thinner than a cell."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(k, 2, generator=g, dtype=torch.float64) * extent * 1.2 - 0.1 * extent
    wh = torch.rand(k, 2, generator=g, dtype=torch.float64) * extent * 0.6
    wh[:4] = torch.rand(4, 2, generator=g, dtype=torch.float64) * 0.5
    image = torch.randint(0, n_images, (k, 1), generator=g).to(torch.float64)
    return torch.cat([image, xy, xy + wh], dim=1)


def test_a_two_by_two_map_by_hand() -> None:
    # samples at 0.5 and 1.5 on each axis: weights (0.25, 0.75) per axis (1.5 clamps to the last
    # row), so the one bin is 0.25·0.25·0 + 0.25·0.75·1 + 0.75·0.25·2 + 0.75·0.75·3 = 2.25
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]], dtype=torch.float64)
    rois = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0]], dtype=torch.float64)
    ours = matmul.roi_align(x, rois, (1, 1), 1.0, 2, False)
    assert ours.item() == 2.25
    assert torchvision.ops.roi_align(x, rois, (1, 1), 1.0, 2, False).item() == 2.25
    # one sample per bin at the centre, (1, 1): the last cell, 3
    assert matmul.roi_align(x, rois, (1, 1), 1.0, 1, False).item() == 3.0


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [2, 1, 3, 0, -1])
def test_equals_torchvision_forward_and_backward(aligned: bool, sampling_ratio: int) -> None:
    x = torch.randn(3, 4, 11, 15, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x.requires_grad_(True)
    rois = _random_rois(3, 40, 100.0, seed=sampling_ratio + 10 * aligned)
    args = ((7, 5), 0.125, sampling_ratio, aligned)
    reference = torchvision.ops.roi_align(x, rois, *args)
    ours = matmul.roi_align(x, rois, *args)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)
    upstream = torch.randn_like(reference)
    (g_ref,) = torch.autograd.grad(reference, x, upstream)
    (g_ours,) = torch.autograd.grad(ours, x, upstream)
    torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=1e-12)


def test_no_rois_and_an_image_without_rois() -> None:
    x = torch.randn(2, 3, 6, 6)
    assert matmul.roi_align(x, torch.zeros(0, 5), (7, 7), 0.25, 2).shape == (0, 3, 7, 7)
    rois = torch.tensor([[1.0, 2.0, 2.0, 20.0, 14.0]])
    torch.testing.assert_close(
        matmul.roi_align(x, rois, (7, 7), 0.25, 2), torchvision.ops.roi_align(x, rois, (7, 7), 0.25, 2)
    )


def _pyramid(side: int, seed: int) -> OrderedDict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return OrderedDict(
        (name, torch.randn(2, 8, side // s, side // s, generator=g, dtype=torch.float64))
        for name, s in (("0", 4), ("1", 8), ("2", 16), ("3", 32), ("pool", 64))
    )


@pytest.mark.parametrize("side", [96, 256])  # 256 px: level "0" is 64 × 64, pooled by torchvision
@pytest.mark.parametrize("output_size", [7, 14])
def test_multiscale_equals_torchvision(side: int, output_size: int) -> None:
    features = _pyramid(side, seed=side)
    for f in features.values():
        f.requires_grad_(True)
    boxes = [_random_rois(1, 30, side, seed=s)[:, 1:].clamp(0, side) for s in (0, 1)]
    boxes = [torch.cat([b[:, :2], torch.maximum(b[:, 2:], b[:, :2] + 1)], dim=1) for b in boxes]
    shapes = [(side, side), (side - 7, side)]
    names = ["0", "1", "2", "3"]
    reference = torchvision.ops.MultiScaleRoIAlign(names, output_size, 2)(features, boxes, shapes)
    ours = matmul.MultiScaleRoIAlign(names, output_size, 2)(features, boxes, shapes)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)
    upstream = torch.randn_like(reference)
    inputs = [features[n] for n in names]
    # a level no box maps to is outside our graph (torchvision pools it with no RoIs): gradient 0
    g_ref = torch.autograd.grad(reference, inputs, upstream, allow_unused=True)
    g_ours = torch.autograd.grad(ours, inputs, upstream, allow_unused=True)
    for f, a, b in zip(inputs, g_ours, g_ref, strict=True):
        zero = torch.zeros_like(f)
        torch.testing.assert_close(zero if a is None else a, zero if b is None else b, rtol=0, atol=1e-12)


def test_multiscale_one_level_and_an_image_without_boxes() -> None:
    features = _pyramid(96, seed=3)
    one = torch.tensor([[4.0, 8.0, 50.0, 40.0]], dtype=torch.float64)
    boxes = [torch.zeros(0, 4, dtype=torch.float64), one]
    shapes = [(96, 96), (96, 96)]
    for names in (["1"], ["0", "1", "2", "3"]):
        reference = torchvision.ops.MultiScaleRoIAlign(names, 7, 2)(features, boxes, shapes)
        ours = matmul.MultiScaleRoIAlign(names, 7, 2)(features, boxes, shapes)
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)
