"""RoIAlign as matrix products (D119) against torchvision's kernel, the reference."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torchvision

from tailteacher.modeling import roi_align as matmul


def _random_rois(n_images: int, k: int, extent: float, seed: int) -> torch.Tensor:
    """[k, 5] boxes of every size, some reaching past the image, a few thinner than a cell, two of
    no extent and two with x2 < x1 or y2 < y1 (an aligned box there gets no sample: zeros)."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(k, 2, generator=g, dtype=torch.float64) * extent * 1.2 - 0.1 * extent
    wh = torch.rand(k, 2, generator=g, dtype=torch.float64) * extent * 0.6
    wh[:4] = torch.rand(4, 2, generator=g, dtype=torch.float64) * 0.5
    wh[4:6] = 0.0
    wh[6:8] = -torch.rand(2, 2, generator=g, dtype=torch.float64) * 8
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


def test_float32_and_no_gradient_to_the_boxes() -> None:
    x = torch.randn(2, 6, 24, 24, generator=torch.Generator().manual_seed(2))
    rois = _random_rois(2, 50, 96.0, seed=5).float().requires_grad_(True)
    reference = torchvision.ops.roi_align(x, rois.detach(), (7, 7), 0.25, 2)
    ours = matmul.roi_align(x, rois, (7, 7), 0.25, 2)
    assert ours.dtype == torch.float32
    assert not ours.requires_grad  # neither input needs a gradient through ours: boxes are constants
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_under_bfloat16_autocast_it_computes_in_float32(dtype: torch.dtype) -> None:
    """The trainer's `amp` wraps the step in autocast; torchvision's wrapper pools in float32 and
    returns the input's dtype, and so does ours (a bf16 product would be ~0.1 off)."""
    x = torch.randn(2, 6, 24, 24, generator=torch.Generator().manual_seed(3)).to(dtype)
    rois = _random_rois(2, 50, 96.0, seed=6).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference = torchvision.ops.roi_align(x, rois, (7, 7), 0.25, 2)
        ours = matmul.roi_align(x, rois, (7, 7), 0.25, 2)
    assert ours.dtype == reference.dtype == dtype
    exact = torchvision.ops.roi_align(x.float(), rois, (7, 7), 0.25, 2)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-2  # bf16: the result's rounding only
    torch.testing.assert_close(ours.float(), exact, rtol=tolerance, atol=tolerance)


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
def test_multiscale_equals_torchvision(side: int, output_size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    pooled_by_us: list[tuple[int, int]] = []
    original = matmul.roi_align

    def spy(input: torch.Tensor, *args: object) -> torch.Tensor:
        pooled_by_us.append((input.shape[-2], input.shape[-1]))
        return original(input, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(matmul, "roi_align", spy)
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
    # the matrix form pooled every level of at most MAX_MATMUL_AREA cells that got boxes, no other
    assert pooled_by_us
    assert all(h * w <= matmul.MAX_MATMUL_AREA for h, w in pooled_by_us)
    assert (side // 4, side // 4) in pooled_by_us or side // 4 * (side // 4) > matmul.MAX_MATMUL_AREA


def test_multiscale_one_level_and_an_image_without_boxes() -> None:
    features = _pyramid(96, seed=3)
    one = torch.tensor([[4.0, 8.0, 50.0, 40.0]], dtype=torch.float64)
    boxes = [torch.zeros(0, 4, dtype=torch.float64), one]
    shapes = [(96, 96), (96, 96)]
    for names in (["1"], ["0", "1", "2", "3"]):
        reference = torchvision.ops.MultiScaleRoIAlign(names, 7, 2)(features, boxes, shapes)
        ours = matmul.MultiScaleRoIAlign(names, 7, 2)(features, boxes, shapes)
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)
