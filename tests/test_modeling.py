"""CascadeMaskRCNN end to end on tiny inputs: gradients, empty images, soft targets, inference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tailteacher.modeling import (
    CascadeMaskRCNN,
    ModelConfig,
    SoftmaxClassification,
    build_model,
)

C = 5
SIZE = 64


def tiny_config(**overrides: object) -> ModelConfig:
    base: dict[str, object] = {
        "num_classes": C,
        "image_min_size": SIZE,
        "image_max_size": SIZE,
        "fpn_channels": 16,
        "box_head_dim": 32,
        "mask_head_channels": 8,
        "anchor_sizes": (8, 16, 32, 64, 128),
        "roi_batch_size_per_image": 64,
        "proposals_train": 200,
        "proposals_test": 100,
    }
    base.update(overrides)
    return ModelConfig(**base)  # type: ignore[arg-type]


def tiny_model(seed: int = 0, **overrides: object) -> CascadeMaskRCNN:
    torch.manual_seed(seed)
    return build_model(tiny_config(**overrides))


def box_mask(box: list[float], h: int = SIZE, w: int = SIZE) -> torch.Tensor:
    m = torch.zeros(h, w, dtype=torch.uint8)
    x1, y1, x2, y2 = (round(v) for v in box)
    m[y1:y2, x1:x2] = 1
    return m


def target(boxes: list[list[float]], labels: list[int], **extra: torch.Tensor) -> dict[str, torch.Tensor]:
    t = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "masks": torch.stack([box_mask(b) for b in boxes])
        if boxes
        else torch.zeros(0, SIZE, SIZE, dtype=torch.uint8),
    }
    t.update(extra)
    return t


def batch() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, SIZE, SIZE, generator=g) for _ in range(2)]
    targets = [
        target([[8, 8, 30, 30], [30, 20, 60, 56]], [1, 3]),
        target([[4, 34, 28, 62]], [4]),
    ]
    return images, targets


def losses_of(model: CascadeMaskRCNN, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]):
    out = model(images, targets)
    assert isinstance(out, dict)
    return out


EXPECTED_LOSSES = {
    "loss_rpn_objectness",
    "loss_rpn_box",
    *(f"loss_{kind}_stage{k}" for kind in ("cls", "box") for k in range(3)),
    "loss_mask",
}


@pytest.mark.parametrize("classifier", ["softmax", "sigmoid"])
def test_every_parameter_gets_a_finite_gradient(classifier: str) -> None:
    freqs = (50.0, 20.0, 5.0, 1.0, 0.0) if classifier == "sigmoid" else None
    model = tiny_model(classifier=classifier, class_frequencies=freqs)
    model.train()
    losses = losses_of(model, *batch())
    assert set(losses) == EXPECTED_LOSSES
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert bad == []


def test_images_without_annotations_are_all_background() -> None:
    model = tiny_model()
    model.train()
    images, _ = batch()
    empty = [target([], []), {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    losses = losses_of(model, images, empty)
    assert set(losses) == EXPECTED_LOSSES
    for k in range(3):
        assert losses[f"loss_cls_stage{k}"] > 0
        assert losses[f"loss_box_stage{k}"] == 0
    assert losses["loss_mask"] == 0
    sum(losses.values()).backward()  # still a graph: every rank of a DDP job can step
    assert model.roi_heads.stage_heads[0].cls_score.weight.grad is not None


def test_instance_weights_scale_the_instance_losses() -> None:
    images, targets = batch()
    zero = [dict(t, weights=torch.zeros(len(t["labels"]))) for t in targets]
    model = tiny_model()
    model.train()
    torch.manual_seed(1)
    losses = losses_of(model, images, zero)
    for k in range(3):
        assert losses[f"loss_box_stage{k}"] == 0
    assert losses["loss_mask"] == 0


class Recorder:
    """A soft cross-entropy that remembers what each stage gave it."""

    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        self.calls.append((logits.detach().clone(), targets.clone(), weights.clone()))
        return SoftmaxClassification().loss_fn(logits, targets, weights)


def _recorded_losses(targets: list[dict[str, torch.Tensor]]):
    recorder = Recorder()
    torch.manual_seed(0)
    model = build_model(tiny_config(), classification=SoftmaxClassification(loss_fn=recorder))
    model.train()
    images, _ = batch()
    torch.manual_seed(123)  # the same proposal sample in every call
    return losses_of(model, images, targets), recorder


def test_one_hot_soft_targets_equal_the_hard_label_cross_entropy() -> None:
    _, targets = batch()
    one_hot = [dict(t, class_targets=F.one_hot(t["labels"], C).float()) for t in targets]
    losses, rec = _recorded_losses(one_hot)
    default_losses, _ = _recorded_losses(targets)
    assert len(rec.calls) == 3
    for k, (logits, full_targets, weights) in enumerate(rec.calls):
        # Background is the last column; every row is one-hot.
        assert full_targets.shape == (logits.shape[0], C + 1)
        assert torch.equal(full_targets.sum(1), torch.ones(len(full_targets)))
        assert (full_targets[:, C] == 1).any() and (full_targets[:, :C] == 1).any()
        hard = F.cross_entropy(logits, full_targets.argmax(1))
        assert torch.allclose(losses[f"loss_cls_stage{k}"], hard, rtol=0, atol=1e-6)
        assert torch.equal(weights, torch.ones_like(weights))
        # Leaving class_targets out means one-hot: bit-identical losses.
        assert torch.equal(losses[f"loss_cls_stage{k}"], default_losses[f"loss_cls_stage{k}"])


def test_foreground_proposals_take_their_ground_truths_soft_target() -> None:
    _, targets = batch()
    soft = torch.tensor([0.05, 0.7, 0.05, 0.1, 0.1])
    smoothed = [dict(t, class_targets=soft.repeat(len(t["labels"]), 1)) for t in targets]
    _, rec = _recorded_losses(smoothed)
    for _, full_targets, _ in rec.calls:
        fg = full_targets[:, C] == 0
        assert fg.any()
        assert torch.allclose(full_targets[fg, :C], soft.expand(int(fg.sum()), C))
        assert torch.equal(
            full_targets[~fg], F.one_hot(torch.tensor(C), C + 1).float().expand(int((~fg).sum()), -1)
        )


def test_state_dict_round_trip_gives_identical_outputs() -> None:
    a, b = tiny_model(seed=0), tiny_model(seed=1)
    b.load_state_dict(a.state_dict())
    a.eval()
    b.eval()
    images, _ = batch()
    with torch.no_grad():
        out_a, out_b = a(images), b(images)
    for da, db in zip(out_a, out_b, strict=True):
        assert da.keys() == db.keys()
        for key in da:
            assert torch.equal(da[key], db[key]), key


def test_inference_outputs_are_capped_and_consistent() -> None:
    model = tiny_model(detections_per_image=7, score_threshold=0.0)
    model.eval()
    images = [torch.rand(3, 48, 80), torch.rand(3, SIZE, SIZE)]  # resized to 64 short side, then back
    with torch.no_grad():
        out = model(images)
    assert isinstance(out, list) and len(out) == 2
    for det, img in zip(out, images, strict=True):
        h, w = img.shape[-2:]
        d = det["boxes"].shape[0]
        assert 0 < d <= 7
        assert det["scores"].shape == det["labels"].shape == (d,)
        assert det["labels"].dtype == torch.int64
        assert det["class_scores"].shape == (d, C)
        assert det["masks"].shape == (d, 1, h, w)
        assert float(det["masks"].min()) >= 0 and float(det["masks"].max()) <= 1
        assert torch.equal(det["class_scores"][torch.arange(d), det["labels"]], det["scores"])
        # Softmax head: the foreground part of a distribution, not renormalised.
        assert bool((det["class_scores"].sum(1) < 1).all())
        assert torch.all(det["scores"][:-1] >= det["scores"][1:])
        boxes = det["boxes"]
        assert bool((boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all())


def test_predict_without_masks_gives_the_same_detections_without_masks() -> None:
    model = tiny_model(detections_per_image=7, score_threshold=0.0)
    model.eval()
    images = [torch.rand(3, 48, 80), torch.rand(3, SIZE, SIZE)]
    calls: list[int] = []
    model.roi_heads.mask_head.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        full = model(images)
        assert calls == [1]
        boxes_only = model.predict(images, masks=False)
    assert calls == [1]  # the mask head did not run
    for a, b in zip(full, boxes_only, strict=True):
        assert set(b) == set(a) - {"masks"}
        for k, v in b.items():
            assert torch.equal(v, a[k]), k


def test_predict_in_training_mode_is_refused() -> None:
    model = tiny_model()
    model.train()
    with pytest.raises(RuntimeError, match="eval"):
        model.predict([torch.rand(3, SIZE, SIZE)], masks=False)


def test_default_inference_returns_at_most_300() -> None:
    model = tiny_model()
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, SIZE, SIZE)])
    assert out[0]["boxes"].shape[0] <= 300
    assert out[0]["class_scores"].shape[1] == C


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": torch.tensor([1, 5])}, "labels"),
        ({"boxes": torch.tensor([[8.0, 8, 4, 30], [30, 20, 60, 56]])}, "x2 > x1"),
        ({"masks": torch.zeros(2, 32, 32, dtype=torch.uint8)}, "masks"),
        ({"class_targets": torch.full((2, C), 1.5)}, "class_targets"),
        ({"class_targets": torch.ones(2, C + 1)}, "class_targets"),
        ({"weights": torch.tensor([1.0, -1.0])}, "weights"),
        ({"scores": torch.ones(2)}, "unknown keys"),
    ],
)
def test_bad_targets_are_named(change: dict[str, torch.Tensor], message: str) -> None:
    model = tiny_model()
    model.train()
    images, targets = batch()
    targets[0] = dict(targets[0], **change)
    with pytest.raises(ValueError, match=message):
        model(images, targets)


def test_training_mode_needs_targets() -> None:
    model = tiny_model()
    model.train()
    with pytest.raises(ValueError, match="targets"):
        model(batch()[0])


def test_sigmoid_head_scores_are_per_class_probabilities() -> None:
    model = tiny_model(classifier="sigmoid", class_frequencies=(5.0,) * C, score_threshold=0.0)
    first_bias = model.roi_heads.stage_heads[0].cls_score.bias
    assert torch.allclose(first_bias, torch.full((C,), -math.log(99)))
    model.eval()
    with torch.no_grad():
        det = model([torch.rand(3, SIZE, SIZE)])[0]
    d = det["scores"].shape[0]
    assert torch.equal(det["class_scores"][torch.arange(d), det["labels"]], det["scores"])


def test_no_detection_above_threshold_gives_empty_outputs() -> None:
    model = tiny_model(score_threshold=0.99)
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, SIZE, SIZE), torch.rand(3, 50, 70)])
    for det, (h, w) in zip(out, [(SIZE, SIZE), (50, 70)], strict=True):
        assert det["boxes"].shape == (0, 4)
        assert det["class_scores"].shape == (0, C)
        assert det["masks"].shape == (0, 1, h, w)


def test_images_without_masks_add_no_mask_loss() -> None:
    model = tiny_model()
    model.train()
    images, targets = batch()
    no_masks = [{k: v for k, v in t.items() if k != "masks"} for t in targets]
    losses = losses_of(model, images, no_masks)
    assert losses["loss_mask"] == 0
    assert losses["loss_box_stage0"] > 0
    sum(losses.values()).backward()


def test_a_training_step_runs_under_bf16_autocast() -> None:
    # train.amp: the RPN's proposals and the heads' deltas come out bf16; the RoIs, the boxes
    # they are decoded into and the targets gathered for them must stay float32 (bf16 GT boxes
    # once failed an index_put into the targets, and lose 8 px at x ≈ 1300).
    model = tiny_model()
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = losses_of(model, *batch())
    assert set(losses) == EXPECTED_LOSSES
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()


def test_refined_boxes_are_float32_whatever_the_deltas_dtype() -> None:
    heads = tiny_model().roi_heads
    rois = [torch.tensor([[1201.3, 700.7, 1297.9, 790.2]])]
    deltas = torch.tensor([[0.5, -0.25, 0.125, 0.0]])
    want = heads._refine(0, deltas, rois, [(1000, 1400)])[0]
    got = heads._refine(0, deltas.bfloat16(), rois, [(1000, 1400)])[0]
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=1e-3, rtol=0)
