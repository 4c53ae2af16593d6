"""One teacher–student training step: supervised loss on labeled images + w · loss on pseudo-labels.

Shapes (one step):
    B_l  labeled images      B_u  unlabeled images      C  foreground classes

The step is a callable the trainer calls as ``step(model, batch)``, where ``batch`` is
``((labeled samples, skipped), (unlabeled pairs, skipped))`` from ``PairedSource``. It returns the
dict of loss terms the trainer sums: ``sup_*`` (the detector's losses on the labeled images, with
the teacher's training targets) and ``unsup_*`` (its losses on the strong views of the unlabeled
images, with the teacher's pseudo-labels as targets, each multiplied by w).

Which unsupervised losses are kept (docs/decisions.md, D59):
    * RPN objectness and RoI classification, always (the pseudo-labels' classes are the paper's
      contribution: soft targets, Eq. 5);
    * box regression (RPN and cascade stages) only when ``unsup_box_loss`` (Unbiased Teacher and
      SoftTeacher's box-jitter gate: a pseudo-box's coordinates are noisier than its class);
    * the mask loss only when ``unsup_mask_loss``: a pseudo-mask is the teacher's 28×28 logits
      pasted, thresholded and resampled into the strong view; measured on ``demo`` (D59) it costs
      mask AP against the control, as Noisy Boundaries (CVPR 2022) found and Unbiased Teacher avoids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from ..modeling import Predictor
from .data import images_of
from .pseudo_labels import PseudoLabelConfig, make_pseudo_labels
from .targets import TargetBuilder, training_targets


class _Pair(Protocol):  # UnlabeledPair (pipeline.student), kept structural to avoid an import cycle
    @property
    def weak(self) -> Any: ...
    @property
    def strong(self) -> Any: ...


def _view_image(view: Any, device: torch.device) -> torch.Tensor:
    image: torch.Tensor = view.image.as_subclass(torch.Tensor).to(device)  # float32 in [0, 1]
    return image


def _count(targets: dict[str, torch.Tensor]) -> int:
    """Pseudo-labels of an image, ignored boxes (weight 0) not counted."""
    weights = targets.get("weights")
    return int(targets["boxes"].shape[0]) if weights is None else int((weights > 0).sum())


def is_box_loss(name: str) -> bool:
    """True for the regression terms: the RPN's ``loss_rpn_box``, our ``loss_box_stage{k}``."""
    return "box" in name


@dataclass
class TeacherStudentStep:
    """``step(model, batch) -> {loss name: scalar}`` for the student's trainer.

    Attributes:
        teacher: the detector whose eval-mode detections (``predict``) become pseudo-labels; it is
            called under ``torch.no_grad`` and put in eval mode at every step (an EMA hook may
            update it). Its mask branch runs only when ``unsup_mask_loss`` (the pseudo-masks are
            used): at 100 detections per image the masks are ~3/4 of its inference time.
        class_targets: the labeled images' target rows (the teacher's Eq. 3 smoothing, or one-hot).
        pseudo_labels: how detections become pseudo-labels (``pipeline.pseudo_labels``).
        delta: [C] the teacher's Δ (Eq. 4) for calibrated pseudo-labels; None otherwise.
        unsup_weight: w ≥ 0. At 0 the teacher is not run (the control: labeled images only).
        unsup_box_loss: keep the regression losses on pseudo-boxes.
        unsup_mask_loss: keep the mask loss on pseudo-masks.
        device: where images and targets go.
        class_weights: [C] post-hoc logit adjustment of the teacher's rows
            (``student.logit_adjustment``, D124); None: the rows as the teacher gives them.
        pseudo_boxes: pseudo-labels kept per step (summed over the unlabeled batch), for the summary.
    """

    teacher: Predictor
    class_targets: TargetBuilder
    pseudo_labels: PseudoLabelConfig
    delta: torch.Tensor | None
    unsup_weight: float
    unsup_box_loss: bool
    unsup_mask_loss: bool
    device: torch.device
    class_weights: torch.Tensor | None = None
    pseudo_boxes: list[int] = field(default_factory=list)

    @torch.no_grad()
    def make_targets(self, pairs: Sequence[_Pair]) -> list[dict[str, torch.Tensor]]:
        """The teacher's pseudo-labels of ``pairs``, in strong-view pixels, on ``device``."""
        self.teacher.eval()
        images = [_view_image(p.weak, self.device) for p in pairs]
        detections = self.teacher.predict(images, masks=self.unsup_mask_loss)
        out = []
        for d, p in zip(detections, pairs, strict=True):
            # Without masks from the teacher an image has none and adds no mask loss (CascadeRoIHeads).
            t = make_pseudo_labels(
                d, self.pseudo_labels, self.delta, p.weak.geometry, p.strong.geometry, self.class_weights
            )
            out.append({k: v.to(self.device) for k, v in t.items()})
        self.pseudo_boxes.append(sum(_count(t) for t in out))
        return out

    def __call__(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        (labeled, _), (pairs, _) = batch
        losses: dict[str, torch.Tensor] = {}
        if labeled:
            sup = model(
                images_of(labeled, self.device), training_targets(labeled, self.class_targets, self.device)
            )
            losses.update({f"sup_{k}": v for k, v in sup.items()})
        if pairs and self.unsup_weight > 0:
            pseudo = self.make_targets(pairs)
            unsup = model([_view_image(p.strong, self.device) for p in pairs], pseudo)
            for k, v in unsup.items():
                if k == "loss_mask" and not self.unsup_mask_loss:
                    continue
                if is_box_loss(k) and not self.unsup_box_loss:
                    continue
                losses[f"unsup_{k}"] = self.unsup_weight * v
        if not losses:
            losses["loss_empty"] = sum(p.sum() * 0.0 for p in model.parameters())  # type: ignore[assignment]
        return losses
