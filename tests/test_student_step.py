"""The teacher–student step: which losses it returns, w, the teacher's mode, and gradient flow.

The teacher is a stub returning hand-built detections (so the pseudo-labels are known exactly);
the student is a real tiny Cascade Mask R-CNN.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from tailteacher.data.dataset import Sample
from tailteacher.data.geometry import Geometry
from tailteacher.data.transforms import View
from tailteacher.modeling import ModelConfig, build_model
from tailteacher.pipeline.data import UnlabeledPair
from tailteacher.pipeline.pseudo_labels import PseudoLabelConfig, make_pseudo_labels
from tailteacher.pipeline.student_step import TeacherStudentStep, is_box_loss
from tailteacher.pipeline.targets import TargetBuilder

S, C = 64, 4


class StubTeacher(nn.Module):
    """Returns the same two detections for every image; records its calls, mode and mask flag."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.calls: list[bool] = []  # self.training at each call
        self.masks: list[bool] = []  # the masks flag at each call

    def predict(self, images: list[torch.Tensor], *, masks: bool = True) -> list[dict[str, torch.Tensor]]:
        self.calls.append(self.training)
        self.masks.append(masks)
        out = [detections() for _ in images]
        for d in out if not masks else ():
            del d["masks"]
        return out


def detections() -> dict[str, torch.Tensor]:
    boxes = torch.tensor([[4.0, 4.0, 28.0, 30.0], [34.0, 36.0, 60.0, 58.0]])
    masks = torch.zeros(2, 1, S, S)
    masks[0, 0, 4:30, 4:28] = 0.9
    masks[1, 0, 36:58, 34:60] = 0.8
    return {
        "boxes": boxes,
        "scores": torch.tensor([0.9, 0.6]),
        "labels": torch.tensor([1, 3]),
        "class_scores": torch.tensor([[0.05, 0.9, 0.0, 0.0], [0.1, 0.0, 0.2, 0.6]]),
        "masks": masks,
    }


def view(image: torch.Tensor, flip: bool) -> View:
    return View(image, None, None, torch.zeros(0, dtype=torch.bool), Geometry((S, S), (S, S), flip=flip))


def batch(labeled: bool = True, unlabeled: int = 2) -> Any:
    g = torch.Generator().manual_seed(0)
    samples = []
    if labeled:
        image = (torch.rand(3, S, S, generator=g) * 255).to(torch.uint8)
        masks = torch.zeros(1, S, S, dtype=torch.uint8)
        masks[0, 10:40, 8:30] = 1
        samples.append(
            Sample(1, image, torch.tensor([[8.0, 10.0, 30.0, 40.0]]), torch.tensor([2]), masks)  # type: ignore[arg-type]
        )
    pairs = []
    for i in range(unlabeled):
        image = torch.rand(3, S, S, generator=g)
        pairs.append(UnlabeledPair(100 + i, view(image, False), view(image.flip(-1), True)))
    return (samples, []), (pairs, [])


def step(teacher: nn.Module, **kw: Any) -> TeacherStudentStep:
    settings: dict[str, Any] = {
        "unsup_weight": 2.0,
        "unsup_box_loss": True,
        "unsup_mask_loss": True,
        **kw,
    }
    return TeacherStudentStep(
        teacher=teacher,
        class_targets=TargetBuilder("onehot", C, 0.0),
        pseudo_labels=PseudoLabelConfig(mode="soft", box_threshold=0.5),
        delta=None,
        device=torch.device("cpu"),
        **settings,
    )


@pytest.fixture
def student() -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(num_classes=C, image_min_size=S, image_max_size=S)).train()


def test_control_never_runs_the_teacher(student: nn.Module) -> None:
    teacher = StubTeacher()
    losses = step(teacher, unsup_weight=0.0)(student, batch())
    assert teacher.calls == []
    assert losses and all(k.startswith("sup_") for k in losses)


def test_unsupervised_terms_are_w_times_the_models_loss_on_the_pseudo_labels(student: nn.Module) -> None:
    teacher = StubTeacher().train()
    b = batch(labeled=False)
    s = step(teacher)
    torch.manual_seed(1)
    losses = s(student, b)
    assert teacher.calls == [False]  # put in eval mode, called once for the whole unlabeled batch
    assert teacher.masks == [True]  # the pseudo-masks are used: the mask branch runs
    assert s.pseudo_boxes == [4]  # τ = 0.5 on the soft row's max: both detections, two images
    pairs = b[1][0]
    expected = [
        make_pseudo_labels(detections(), s.pseudo_labels, None, p.weak.geometry, p.strong.geometry)
        for p in pairs
    ]
    torch.manual_seed(1)  # the RoI sampler draws at random: same draws as in the step
    direct = student([p.strong.image for p in pairs], expected)
    assert set(losses) == {f"unsup_{k}" for k in direct}
    for k, v in direct.items():
        torch.testing.assert_close(losses[f"unsup_{k}"], 2.0 * v, rtol=0, atol=0)


def test_mask_and_box_losses_can_be_left_out(student: nn.Module) -> None:
    teacher = StubTeacher()
    losses = step(teacher, unsup_mask_loss=False, unsup_box_loss=False)(student, batch())
    assert teacher.masks == [False]  # no pseudo-mask is used: the teacher's mask branch is skipped
    unsup = {k for k in losses if k.startswith("unsup_")}
    assert unsup == {"unsup_loss_rpn_objectness"} | {f"unsup_loss_cls_stage{k}" for k in range(3)}
    assert "sup_loss_mask" in losses and "sup_loss_rpn_box" in losses  # labeled images keep all


def test_gradients_reach_the_student_not_the_teacher(student: nn.Module) -> None:
    teacher = StubTeacher()
    losses = step(teacher)(student, batch())
    sum(losses.values()).backward()  # type: ignore[union-attr]
    assert teacher.weight.grad is None
    grads = [p.grad for p in student.parameters() if p.requires_grad]
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads)


def test_box_loss_names() -> None:
    assert is_box_loss("loss_rpn_box") and is_box_loss("loss_box_stage2")
    assert not is_box_loss("loss_rpn_objectness") and not is_box_loss("loss_cls_stage0")
    assert not is_box_loss("loss_mask")
