"""Unit tests of the cascade's pieces: stage matching, soft targets, classifier heads, selection, masks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection._utils import BoxCoder, Matcher
from torchvision.ops import box_iou

from tailteacher.modeling import (
    BACKGROUND,
    DetectionSelector,
    FederatedClassSampler,
    ImageTargets,
    ModelConfig,
    SigmoidFederatedClassification,
    SoftmaxClassification,
    federated_sigmoid_loss,
    match_proposals,
    softmax_targets,
    stage_targets,
)
from tailteacher.modeling.builder import build_roi_heads
from tailteacher.modeling.cascade_heads import scale_gradient
from tailteacher.modeling.mask_head import mask_loss, mask_targets

GT = torch.tensor([[0.0, 0.0, 10.0, 10.0]])


def _proposal_at_iou(iou: float) -> torch.Tensor:
    # [0, 0, 10, h] inside the 10×10 ground truth has IoU h/10.
    return torch.tensor([[0.0, 0.0, 10.0, 10.0 * iou]])


def _heads():
    return build_roi_heads(ModelConfig(num_classes=3))


@pytest.mark.parametrize(
    ("iou", "foreground_in"),
    [(0.45, ()), (0.55, (0,)), (0.65, (0, 1)), (0.75, (0, 1, 2)), (0.5, (0,)), (0.7, (0, 1, 2))],
)
def test_each_stage_matches_at_its_own_threshold(iou: float, foreground_in: tuple[int, ...]) -> None:
    proposal = _proposal_at_iou(iou)
    assert math.isclose(float(box_iou(proposal, GT)), iou, rel_tol=1e-6)
    heads = _heads()
    for k, matcher in enumerate(heads.proposal_matchers):
        matched = match_proposals(proposal, GT, matcher)
        assert int(matched) == (0 if k in foreground_in else BACKGROUND), (k, iou)


def test_matching_without_ground_truth_is_background() -> None:
    matched = match_proposals(torch.rand(5, 4) * 10 + torch.tensor([0, 0, 10, 10]), GT[:0], Matcher(0.5, 0.5))
    assert torch.equal(matched, torch.full((5,), BACKGROUND))


def test_stage_targets_gather_the_matched_instance() -> None:
    gt = ImageTargets(
        boxes=torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0]]),
        targets=torch.tensor([[0.1, 0.8, 0.1], [0.0, 0.0, 1.0]]),
        weights=torch.tensor([0.5, 2.0]),
        masks=None,
    )
    proposals = torch.tensor([[0.0, 0.0, 10.0, 6.0], [21.0, 21.0, 40.0, 40.0], [50.0, 50.0, 60.0, 60.0]])
    coder = BoxCoder((20.0, 20.0, 10.0, 10.0))
    matched = match_proposals(proposals, gt.boxes, Matcher(0.6, 0.6))  # IoUs 0.6, 0.9025, 0
    assert matched.tolist() == [0, 1, BACKGROUND]
    t = stage_targets(proposals, matched, gt, coder)
    assert torch.equal(t.class_targets, torch.tensor([[0.1, 0.8, 0.1], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    assert torch.equal(t.weights, torch.tensor([0.5, 2.0, 1.0]))
    assert torch.equal(t.foreground, torch.tensor([True, True, False]))
    expected = coder.encode_single(gt.boxes[[0, 1]], proposals[:2])
    assert torch.allclose(t.box_targets[:2], expected)
    assert torch.equal(t.box_targets[2], torch.zeros(4))
    # The stage's box-coder weights scale the targets (stage 2's are 1.5× stage 1's).
    t3 = stage_targets(proposals, matched, gt, BoxCoder((30.0, 30.0, 15.0, 15.0)))
    assert torch.allclose(t3.box_targets, 1.5 * t.box_targets)


def test_softmax_targets_put_background_last() -> None:
    fg = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.2, 0.5, 0.0], [0.9, 0.9, 0.2]])
    full = softmax_targets(fg)
    assert full.shape == (4, 4)
    assert torch.allclose(full[0], torch.tensor([0.0, 1.0, 0.0, 0.0]))
    assert torch.allclose(full[1], torch.tensor([0.0, 0.0, 0.0, 1.0]))
    assert torch.allclose(full[2], torch.tensor([0.2, 0.5, 0.0, 0.3]))  # leftover mass → background
    assert torch.allclose(full[3], torch.tensor([0.45, 0.45, 0.1, 0.0]))  # over 1 → renormalised
    assert torch.allclose(full.sum(1), torch.ones(4))


def test_softmax_head_loss_and_probabilities() -> None:
    head = SoftmaxClassification()
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 2, 3, 3, 1, 3])  # 3 = background
    fg = F.one_hot(labels, 4)[:, :3].float()
    loss = head.loss(logits, fg, torch.ones(6), fg)
    assert torch.allclose(loss, F.cross_entropy(logits, labels), atol=1e-7)
    probs = head.probabilities(logits)
    assert torch.allclose(probs, torch.softmax(logits, 1)[:, :3])
    assert head.num_logits(3) == 4


def test_federated_sampler_takes_positives_and_frequency_weighted_negatives() -> None:
    freqs = torch.tensor([100.0, 0.0, 4.0, 1.0, 9.0, 0.0, 16.0, 25.0])
    sampler = FederatedClassSampler(freqs, num_sampled=4, generator=torch.Generator().manual_seed(0))
    gt = F.one_hot(torch.tensor([1, 3]), 8).float()
    for _ in range(20):
        chosen = sampler(gt)
        assert chosen.dtype == torch.bool and int(chosen.sum()) == 4
        assert chosen[1] and chosen[3]  # positives, even of frequency 0
        assert not chosen[5]  # frequency 0: never a negative
    # Soft targets make positives of the classes they put mass on.
    soft = torch.tensor([[0.0, 0.9, 0.0, 0.0, 0.0, 0.05, 0.0, 0.05]])
    assert torch.equal(
        FederatedClassSampler(freqs, num_sampled=3)(soft), torch.tensor([0, 1, 0, 0, 0, 1, 0, 1]).bool()
    )
    # More positives than num_sampled: exactly the positives.
    many = torch.ones(1, 8)
    assert bool(FederatedClassSampler(freqs, num_sampled=2)(many).all())


def test_federated_sampler_draws_in_proportion_to_sqrt_frequency() -> None:
    freqs = torch.tensor([1.0, 4.0, 16.0, 64.0])  # sqrt: 1, 2, 4, 8
    sampler = FederatedClassSampler(freqs, num_sampled=1, generator=torch.Generator().manual_seed(0))
    none = torch.zeros(0, 4)
    counts = torch.stack([sampler(none) for _ in range(3000)]).sum(0).double()
    assert torch.allclose(counts / counts.sum(), torch.tensor([1, 2, 4, 8]).double() / 15, atol=0.03)


def test_federated_loss_equals_bce_sum_over_rows() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=g)
    targets = F.one_hot(torch.tensor([0, 3, 1, 1, 2]), 4).float()
    targets[4] = 0  # a background row
    every = torch.ones(4, dtype=torch.bool)
    loss = federated_sigmoid_loss(logits, targets, every, torch.ones(5))
    assert torch.allclose(loss, F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / 5)
    mask = torch.tensor([True, False, True, False])
    masked = federated_sigmoid_loss(logits, targets, mask, torch.ones(5))
    ref = F.binary_cross_entropy_with_logits(logits[:, mask], targets[:, mask], reduction="sum") / 5
    assert torch.allclose(masked, ref)
    empty = torch.zeros(0, 4, requires_grad=True)
    zero = federated_sigmoid_loss(empty, torch.zeros(0, 4), every, torch.zeros(0))
    zero.backward()
    assert float(zero.detach()) == 0.0 and empty.grad is not None


def test_sigmoid_head_has_no_background_logit_and_a_prior_bias() -> None:
    head = SigmoidFederatedClassification(sampler=FederatedClassSampler(torch.ones(3)))
    assert head.num_logits(3) == 3
    assert math.isclose(1 / (1 + math.exp(-head.initial_bias())), 0.01)
    logits = torch.randn(2, 3)
    assert torch.equal(head.probabilities(logits), torch.sigmoid(logits))


def test_selector_keeps_top_k_per_class_nms_and_full_score_rows() -> None:
    boxes = torch.tensor([[0.0, 0, 10, 10], [0.5, 0, 10, 10], [20, 20, 30, 30], [0, 0, 0.001, 0.001]])
    probs = torch.tensor([[0.6, 0.3], [0.5, 0.4], [0.1, 0.05], [0.9, 0.0]])
    det = DetectionSelector(score_threshold=0.08, nms_threshold=0.5, max_detections=10)(
        boxes, probs, (40, 40)
    )
    # Box 3 is too small; box 1 is suppressed by box 0 in class 0 but is the best of class 1.
    assert det.labels.tolist() == [0, 1, 0]
    assert torch.allclose(det.scores, torch.tensor([0.6, 0.4, 0.1]))
    assert torch.equal(det.class_scores, probs[[0, 1, 2]])
    capped = DetectionSelector(score_threshold=0.0, max_detections=2)(boxes, probs, (40, 40))
    assert capped.scores.shape == (2,)


def test_mask_targets_crop_the_matched_mask() -> None:
    masks = torch.zeros(2, 20, 20, dtype=torch.uint8)
    masks[0, :10, :] = 1  # top half
    masks[1] = 1
    rois = torch.tensor([[0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 20.0, 20.0]])
    t = mask_targets(masks, torch.tensor([0, 1]), rois, 4)
    assert torch.allclose(t[0], torch.tensor([[1.0] * 4, [1.0] * 4, [0.0] * 4, [0.0] * 4]))
    assert torch.allclose(t[1], torch.ones(4, 4))


def test_mask_loss_is_a_weighted_mean_of_per_mask_bce() -> None:
    logits = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    targets = (torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    per = F.binary_cross_entropy_with_logits(logits[:, 0], targets, reduction="none").mean((1, 2))
    assert torch.allclose(mask_loss(logits, targets, torch.ones(3)), per.mean())
    assert torch.allclose(
        mask_loss(logits, targets, torch.tensor([0.0, 1.0, 2.0])), (per[1] + 2 * per[2]) / 3
    )
    empty = torch.zeros(0, 1, 4, 4, requires_grad=True)
    mask_loss(empty, torch.zeros(0, 4, 4), torch.zeros(0)).backward()
    assert empty.grad is not None


def test_scale_gradient_is_identity_forward_scaled_backward() -> None:
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = scale_gradient(x, 1 / 3)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full((2,), 1 / 3))
