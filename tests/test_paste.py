"""Batched mask pasting against torchvision's per-detection paste."""

import pytest
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image

from tailteacher.modeling.paste import paste_masks


def test_a_constant_mask_fills_its_box_and_nothing_else():
    masks = torch.full((1, 1, 28, 28), 0.75)
    out = paste_masks(masks, torch.tensor([[10.0, 20.0, 50.0, 40.0]]), (64, 80))
    assert out.shape == (1, 1, 64, 80)
    # Pixels whose centre lies more than half a mask pixel inside the box: the mask's value.
    torch.testing.assert_close(out[0, 0, 21:39, 11:49], torch.full((18, 38), 0.75), rtol=0, atol=1e-6)
    outside = torch.ones(64, 80, dtype=torch.bool)  # beyond one pixel around the box
    outside[19:41, 9:51] = False
    assert out[0, 0][outside].abs().max() == 0


def test_a_half_mask_pastes_onto_the_left_half_of_its_box_at_subpixel_boxes():
    # Mask: left 14 of 28 columns 1, the rest 0; thresholded at 0.5 the pasted mask is the pixels
    # whose centre lies left of the box's middle (and inside its rows). Box corners at quarter
    # pixels so that no pixel centre sits on a boundary.
    masks = torch.zeros(2, 1, 28, 28)
    masks[:, :, :, :14] = 1.0
    boxes = torch.tensor([[3.25, 4.25, 40.75, 30.75], [10.25, 0.25, 21.75, 9.75]])
    out = paste_masks(masks, boxes, (32, 48)) >= 0.5
    for k, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        centre_x = torch.arange(48) + 0.5
        centre_y = torch.arange(32) + 0.5
        rows = (centre_y > y0) & (centre_y < y1)
        cols = (centre_x > x0) & (centre_x < (x0 + x1) / 2)
        assert torch.equal(out[k, 0], rows[:, None] & cols[None, :]), k


def test_close_to_torchvision_which_rounds_boxes_to_whole_pixels():
    g = torch.Generator().manual_seed(0)
    n, size = 40, (96, 128)
    x0 = torch.rand(n, generator=g) * 70
    y0 = torch.rand(n, generator=g) * 40
    wh = 24 + torch.rand(n, 2, generator=g) * 30
    boxes = torch.stack([x0, y0, x0 + wh[:, 0], y0 + wh[:, 1]], dim=1)
    masks = torch.nn.functional.interpolate(torch.rand(n, 1, 5, 5, generator=g), size=28, mode="bilinear")
    ours = paste_masks(masks, boxes, size) >= 0.5
    theirs = paste_masks_in_image(masks, boxes, size) >= 0.5
    inter = (ours & theirs).flatten(1).sum(1).float()
    union = (ours | theirs).flatten(1).sum(1).float()
    iou = inter[union > 0] / union[union > 0]
    # torchvision truncates the (padded) box to whole pixels: up to a pixel's shift per side, so
    # this is a sanity bound; the half-mask test above is the exact one.
    assert iou.mean() >= 0.85 and iou.min() >= 0.7


def test_chunks_give_the_same_result_and_empty_inputs_work():
    g = torch.Generator().manual_seed(1)
    masks = torch.rand(7, 1, 14, 14, generator=g)
    boxes = torch.tensor([[2.0, 3.0, 30.0, 20.0]]).repeat(7, 1) + torch.arange(7.0)[:, None]
    whole = paste_masks(masks, boxes, (40, 50))
    assert torch.equal(paste_masks(masks, boxes, (40, 50), chunk_pixels=2 * 40 * 50), whole)
    assert paste_masks(masks[:0], boxes[:0], (40, 50)).shape == (0, 1, 40, 50)
    with pytest.raises(ValueError, match="boxes"):
        paste_masks(masks, boxes[:3], (40, 50))
