"""CascadeMaskRCNN: resize/normalise → backbone pyramid → RPN → cascade RoI heads → detections.

Shapes:
    N  images      H_i, W_i  image i's original size      G_i  its instances
    C  foreground classes      D_i  its detections (≤ detections per image)

Training: ``model(images, targets)`` with per image ``{"boxes" [G,4] XYXY float, "labels" [G] int64
in [0, C), "masks" [G,H,W] uint8 (optional: without it the image adds no mask loss),
"class_targets" [G,C] float in [0,1] (optional: one-hot of labels), "weights" [G] ≥ 0 (optional: 1)}``
returns the loss dict. Evaluation: ``model(images)`` returns per image ``{"boxes" [D,4], "scores" [D],
"labels" [D], "class_scores" [D,C], "masks" [D,1,H,W] probabilities}`` in original coordinates;
``model.predict(images, masks=False)`` the same without ``"masks"`` (the mask branch is not run).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes

from .backbones import DetectionBackbone
from .cascade_heads import CascadeRoIHeads
from .cascade_targets import ImageTargets
from .paste import paste_masks

Target = dict[str, torch.Tensor]

_RPN_LOSS_NAMES = {"loss_objectness": "loss_rpn_objectness", "loss_rpn_box_reg": "loss_rpn_box"}
_KNOWN_KEYS = {"boxes", "labels", "masks", "class_targets", "weights"}


class Predictor(Protocol):
    """What a pseudo-labeller needs of a detector: ``eval()`` and ``predict`` (``CascadeMaskRCNN``
    is one; a test can stand in for it)."""

    def eval(self) -> Any: ...

    def predict(self, images: list[torch.Tensor], *, masks: bool = True) -> list[Target]: ...


class CascadeMaskRCNN(nn.Module):
    """A Cascade Mask R-CNN composed of torchvision parts and our cascade heads."""

    def __init__(
        self,
        *,
        transform: GeneralizedRCNNTransform,
        backbone: DetectionBackbone,
        rpn: RegionProposalNetwork,
        roi_heads: CascadeRoIHeads,
        num_classes: int,
    ) -> None:
        """
        Args:
            transform: torchvision ``GeneralizedRCNNTransform`` (normalise, resize, batch).
            backbone: images → the five-level pyramid.
            rpn: torchvision ``RegionProposalNetwork`` over all pyramid levels.
            roi_heads: the cascade stages and the mask head.
            num_classes: C.
        """
        super().__init__()
        self.transform = transform
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads
        self.num_classes = num_classes

    def forward(
        self, images: list[torch.Tensor], targets: list[Target] | None = None
    ) -> dict[str, torch.Tensor] | list[Target]:
        """Training mode: the loss dict (``targets`` required). Eval mode: one detection dict per image."""
        if not self.training:
            return self.predict(images)
        _check_images(images)
        if targets is None:
            raise ValueError("targets: required in training mode (call model.eval() to predict)")
        if len(targets) != len(images):
            raise ValueError(f"targets: expected one per image ({len(images)}), got {len(targets)}")
        checked = [
            _check_target(t, i, img, self.num_classes)
            for i, (t, img) in enumerate(zip(targets, images, strict=True))
        ]
        return self._losses(images, checked)

    def predict(self, images: list[torch.Tensor], *, masks: bool = True) -> list[Target]:
        """Eval-mode detections of ``images`` (call ``eval()`` first), as ``model(images)``.

        Args:
            images: N float tensors [3, H_i, W_i] in [0, 1].
            masks: run the mask branch and paste its masks ("masks" [D,1,H_i,W_i]). Without it the
                detections are identical but carry no "masks": a teacher whose pseudo-masks are not
                used (``student.unsup_mask_loss: false``) skips ~3/4 of its inference time at up to
                100 detections per image (BENCHMARKS.md, "The student's teacher without its mask
                branch", D114).

        Raises:
            ValueError: ``images`` is not a non-empty list of [3, H, W] float tensors.
            RuntimeError: the model is in training mode.
        """
        if self.training:
            raise RuntimeError("predict: the model is in training mode; call model.eval() first")
        _check_images(images)
        original_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
        batch, _ = self.transform(images)
        features = self.backbone(batch.tensors)
        proposals, _ = self.rpn(batch, features)
        detections = self.roi_heads.forward_eval(features, proposals, batch.image_sizes, masks=masks)
        # Boxes back to the original image, masks pasted there (all of an image's at once).
        for det, size, original in zip(detections, batch.image_sizes, original_sizes, strict=True):
            det["boxes"] = resize_boxes(det["boxes"], size, original)
            if "masks" in det:
                det["masks"] = paste_masks(det["masks"], det["boxes"], original)
        result: list[Target] = detections
        return result

    def _losses(self, images: list[torch.Tensor], targets: list[Target]) -> dict[str, torch.Tensor]:
        batch, resized = self.transform(images, targets)
        features = self.backbone(batch.tensors)
        proposals, rpn_losses = self.rpn(batch, features, resized)
        ground_truth = [
            ImageTargets(
                boxes=t["boxes"], targets=t["class_targets"], weights=t["weights"], masks=t.get("masks")
            )
            for t in resized
        ]
        losses = {_RPN_LOSS_NAMES[k]: v for k, v in rpn_losses.items()}
        losses.update(self.roi_heads.forward_train(features, proposals, batch.image_sizes, ground_truth))
        return losses


def _check_images(images: object) -> None:
    if not isinstance(images, list | tuple) or not images:
        raise ValueError("images: expected a non-empty list of [3, H, W] float tensors")
    for i, img in enumerate(images):
        if not isinstance(img, torch.Tensor) or img.dim() != 3 or img.shape[0] != 3:
            shape = list(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
            raise ValueError(f"images[{i}]: expected a [3, H, W] tensor, got {shape}")
        if not img.is_floating_point():
            raise ValueError(f"images[{i}]: expected floating values in [0, 1], got {img.dtype}")


def _check_target(target: Target, i: int, image: torch.Tensor, num_classes: int) -> Target:
    """Validate one image's target and fill the defaults (one-hot class_targets, unit weights)."""
    where = f"targets[{i}]"
    if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
        raise ValueError(f"{where}: expected a dict with 'boxes' [G, 4] and 'labels' [G]")
    unknown = set(target) - _KNOWN_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; expected some of {sorted(_KNOWN_KEYS)}")
    boxes, labels = target["boxes"], target["labels"]
    if boxes.dim() != 2 or boxes.shape[1] != 4 or not boxes.is_floating_point():
        raise ValueError(
            f"{where}['boxes']: expected a float [G, 4] tensor, got {boxes.dtype} {list(boxes.shape)}"
        )
    g = boxes.shape[0]
    if g and not bool(torch.isfinite(boxes).all() & (boxes[:, 2:] > boxes[:, :2]).all()):
        raise ValueError(f"{where}['boxes']: expected finite XYXY boxes with x2 > x1 and y2 > y1")
    if labels.shape != (g,) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(
            f"{where}['labels']: expected an integer [{g}] tensor, got {labels.dtype} {list(labels.shape)}"
        )
    if g and not bool(((labels >= 0) & (labels < num_classes)).all()):
        raise ValueError(f"{where}['labels']: expected 0-based classes in [0, {num_classes})")
    out = {"boxes": boxes.float(), "labels": labels.long()}
    out["class_targets"] = _class_targets(target.get("class_targets"), out["labels"], num_classes, where)
    weights = target.get("weights")
    if weights is None:
        weights = boxes.new_ones(g, dtype=torch.float32)
    elif weights.shape != (g,) or not bool((torch.isfinite(weights) & (weights >= 0)).all()):
        raise ValueError(f"{where}['weights']: expected [{g}] finite values ≥ 0")
    out["weights"] = weights.float()
    masks = target.get("masks")
    if masks is not None:
        if masks.shape != (g, *image.shape[-2:]) or masks.dtype not in (torch.uint8, torch.bool):
            raise ValueError(
                f"{where}['masks']: expected a uint8 [{g}, {image.shape[-2]}, {image.shape[-1]}] tensor, "
                f"got {masks.dtype} {list(masks.shape)}"
            )
        out["masks"] = masks.to(torch.uint8)
    return out


def _class_targets(
    targets: torch.Tensor | None, labels: torch.Tensor, num_classes: int, where: str
) -> torch.Tensor:
    if targets is None:
        return F.one_hot(labels, num_classes).float()
    g = labels.shape[0]
    if targets.shape != (g, num_classes) or not targets.is_floating_point():
        raise ValueError(
            f"{where}['class_targets']: expected a float [{g}, {num_classes}] tensor, got "
            f"{targets.dtype} {list(targets.shape)}"
        )
    if g and not bool(((targets >= 0) & (targets <= 1)).all()):
        raise ValueError(f"{where}['class_targets']: expected values in [0, 1]")
    return targets.detach().float()
