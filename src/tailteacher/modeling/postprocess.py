"""From per-class probabilities of refined boxes to an image's detections.

Shapes (one image):
    R  final-stage boxes      C  foreground classes      D  detections (≤ max_detections)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import batched_nms, clip_boxes_to_image, remove_small_boxes


@dataclass(frozen=True)
class ImageDetections:
    """One image's detections.

    Attributes:
        boxes: [D, 4] XYXY.
        scores: [D] the probability of the kept class.
        labels: [D] int64 0-based class.
        class_scores: [D, C] the full probability vector of the box the detection came from
            (``class_scores[d, labels[d]] == scores[d]``): a soft pseudo-label for a student.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    class_scores: torch.Tensor


@dataclass(frozen=True)
class DetectionSelector:
    """Every (box, class) pair above ``score_threshold``, per-class NMS, the top ``max_detections``.

    As detectron2's ``fast_rcnn_inference``: one box may give detections of several classes.
    """

    score_threshold: float = 1e-4
    nms_threshold: float = 0.5
    max_detections: int = 300
    min_box_size: float = 1e-2

    def __call__(
        self, boxes: torch.Tensor, probs: torch.Tensor, image_size: tuple[int, int]
    ) -> ImageDetections:
        """
        Args:
            boxes: [R, 4] class-agnostic refined boxes.
            probs: [R, C] per-class probabilities of each box.
            image_size: (h, w) to clip the boxes to.
        """
        boxes = clip_boxes_to_image(boxes, image_size)
        keep_boxes = remove_small_boxes(boxes, self.min_box_size)
        boxes, probs = boxes[keep_boxes], probs[keep_boxes]
        rows, classes = torch.nonzero(probs > self.score_threshold, as_tuple=True)
        scores = probs[rows, classes]
        keep = batched_nms(boxes[rows], scores, classes, self.nms_threshold)[: self.max_detections]
        rows, classes = rows[keep], classes[keep]
        return ImageDetections(
            boxes=boxes[rows], scores=scores[keep], labels=classes, class_scores=probs[rows]
        )
