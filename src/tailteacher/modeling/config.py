"""ModelConfig: the plain, frozen description of a Cascade Mask R-CNN that ``build_model`` turns into modules.

The engine maps its (pydantic) run config onto this dataclass; nothing below the builder reads it.
Every field is checked on construction, with a message that says what to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..numbers import is_finite_number

Classifier = Literal["softmax", "sigmoid"]
ResNetNorm = Literal["batch", "frozen_batch"]

#: Backbone names served by torchvision ResNet + FPN; any other name but the EfficientNets
#: (``efficientnet.EFFICIENTNET_BACKBONES``) is a timm ViT (simple pyramid).
RESNET_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")


@dataclass(frozen=True)
class ModelConfig:
    """Everything ``build_model`` needs. Defaults: the CPU-sized ResNet-18 model of the embedded benchmark.

    Attributes:
        num_classes: C foreground classes (labels are 0-based, ``0 … C-1``).
        backbone: ``resnet18|34|50|101`` (torchvision ResNet-FPN), ``efficientnet_lite0…4`` (timm
            EfficientNet-Lite + FPN) or the name of a timm ViT (e.g. ``vit_tiny_patch16_224``,
            ``eva02_large_patch14_448.mim_m38m``), ViTDet-style pyramid.
        weights_path: local backbone checkpoint (``.safetensors``/``.pt``/``.pth``), or
            ``package:NAME`` for weights an installed pip package ships (``package:efficientnet_lite0``,
            see ``checkpoint.PACKAGED_WEIGHTS``); None = random init.
        resnet_norm: the norm of a ResNet or EfficientNet trunk: ``"batch"`` (trainable BatchNorm, for
            random init) or ``"frozen_batch"`` (FrozenBatchNorm2d, for fine-tuning a pretrained trunk).
        vit_img_size: the ViT's nominal input size (its position-embedding grid); None = ``max_size``
            rounded up to a multiple of 16. Other input sizes interpolate the embedding.
        fpn_channels: width of every pyramid level.
        min_size, max_size: GeneralizedRCNNTransform resizing (a tuple of min sizes = multi-scale training).
        image_mean, image_std: normalisation; None = the backbone's (ImageNet, or the timm model's).
        anchor_sizes: one anchor size per pyramid level (5 levels: strides 4, 8, 16, 32, 64).
        box_head_dim: width of each stage's 2×FC box head.
        mask_head_channels, mask_head_convs: the class-agnostic mask head's 3×3 convolutions.
        classifier: ``"softmax"`` over C+1 (background last) or ``"sigmoid"`` with the federated loss.
        class_frequencies: [C] per-class frequencies (e.g. image counts); required by ``"sigmoid"``.
        federated_classes: classes per iteration in the federated loss (LVIS: 50).
        stage_iou_thresholds: one foreground IoU threshold per cascade stage.
        stage_box_weights: one BoxCoder weight 4-tuple per cascade stage.
        roi_batch_size_per_image, roi_positive_fraction: stage-0 proposal sampling.
        rpn_*: RegionProposalNetwork settings (torchvision's defaults).
        detections_per_image: top-K detections kept per image (LVIS protocol: 300).
        score_threshold: minimum class score of a detection.
        nms_threshold: per-class NMS IoU.
    """

    num_classes: int
    backbone: str = "resnet18"
    weights_path: str | None = None
    resnet_norm: ResNetNorm = "batch"
    vit_img_size: int | None = None
    fpn_channels: int = 64
    min_size: int | tuple[int, ...] = 96
    max_size: int = 160
    image_mean: tuple[float, float, float] | None = None
    image_std: tuple[float, float, float] | None = None
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    box_head_dim: int = 256
    mask_head_channels: int = 64
    mask_head_convs: int = 2
    classifier: Classifier = "softmax"
    class_frequencies: tuple[float, ...] | None = None
    federated_classes: int = 50
    stage_iou_thresholds: tuple[float, ...] = (0.5, 0.6, 0.7)
    stage_box_weights: tuple[tuple[float, float, float, float], ...] = (
        (10.0, 10.0, 5.0, 5.0),
        (20.0, 20.0, 10.0, 10.0),
        (30.0, 30.0, 15.0, 15.0),
    )
    roi_batch_size_per_image: int = 512
    roi_positive_fraction: float = 0.25
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_test: int = 1000
    rpn_nms_threshold: float = 0.7
    detections_per_image: int = 300
    score_threshold: float = 1e-4
    nms_threshold: float = 0.5

    def __post_init__(self) -> None:
        _positive_int("num_classes", self.num_classes)
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ValueError("backbone: expected a name such as 'resnet18' or 'vit_tiny_patch16_224'")
        self._check_weights()
        if self.resnet_norm not in ("batch", "frozen_batch"):
            raise ValueError(f"resnet_norm: expected 'batch' or 'frozen_batch', got {self.resnet_norm!r}")
        if self.vit_img_size is not None:
            _positive_int("vit_img_size", self.vit_img_size)
        for name in ("fpn_channels", "max_size", "box_head_dim", "mask_head_channels"):
            _positive_int(name, getattr(self, name))
        for name in ("roi_batch_size_per_image", "detections_per_image", "federated_classes"):
            _positive_int(name, getattr(self, name))
        for name in ("rpn_pre_nms_top_n_train", "rpn_pre_nms_top_n_test"):
            _positive_int(name, getattr(self, name))
        for name in ("rpn_post_nms_top_n_train", "rpn_post_nms_top_n_test"):
            _positive_int(name, getattr(self, name))
        if not isinstance(self.mask_head_convs, int) or self.mask_head_convs < 0:
            raise ValueError(f"mask_head_convs: expected an integer ≥ 0, got {self.mask_head_convs!r}")
        sizes = self.min_size if isinstance(self.min_size, tuple) else (self.min_size,)
        if not sizes:
            raise ValueError("min_size: expected an integer or a non-empty tuple of integers")
        for s in sizes:
            _positive_int("min_size", s)
        if len(self.anchor_sizes) != 5:
            raise ValueError(
                f"anchor_sizes: expected 5 sizes (one per pyramid level, strides 4…64), "
                f"got {len(self.anchor_sizes)}"
            )
        for s in self.anchor_sizes:
            _positive_int("anchor_sizes", s)
        for name, stats in (("image_mean", self.image_mean), ("image_std", self.image_std)):
            if stats is not None and (len(stats) != 3 or not all(is_finite_number(v) for v in stats)):
                raise ValueError(f"{name}: expected 3 finite numbers (one per RGB channel), got {stats!r}")
        if self.image_std is not None and min(self.image_std) <= 0:
            raise ValueError(f"image_std: expected values > 0, got {self.image_std!r}")
        self._check_stages()
        self._check_classifier()
        for name in ("roi_positive_fraction", "rpn_nms_threshold", "nms_threshold"):
            v = getattr(self, name)
            if not is_finite_number(v) or not 0 < v <= 1:
                raise ValueError(f"{name}: expected a number in (0, 1], got {v!r}")
        if not is_finite_number(self.score_threshold) or not 0 <= self.score_threshold < 1:
            raise ValueError(f"score_threshold: expected a number in [0, 1), got {self.score_threshold!r}")

    def _check_weights(self) -> None:
        from .checkpoint import packaged_weights

        if self.weights_path is None:
            return
        if not isinstance(self.weights_path, str) or not self.weights_path:
            raise ValueError(
                f"weights_path: expected a file path or 'package:NAME', got {self.weights_path!r}"
            )
        entry = packaged_weights(self.weights_path)
        if entry is not None and entry.backbone != self.backbone:
            raise ValueError(
                f"weights: {self.weights_path!r} holds weights for backbone {entry.backbone!r}, "
                f"not {self.backbone!r}; set model.backbone={entry.backbone}"
            )

    def _check_stages(self) -> None:
        thresholds, weights = self.stage_iou_thresholds, self.stage_box_weights
        if not thresholds:
            raise ValueError("stage_iou_thresholds: expected at least one stage, e.g. (0.5, 0.6, 0.7)")
        if len(weights) != len(thresholds):
            raise ValueError(
                f"stage_box_weights: expected one 4-tuple per stage ({len(thresholds)} stages), "
                f"got {len(weights)}"
            )
        for t in thresholds:
            if not is_finite_number(t) or not 0 < t < 1:
                raise ValueError(f"stage_iou_thresholds: expected numbers in (0, 1), got {thresholds!r}")
        for w in weights:
            if len(w) != 4 or not all(is_finite_number(v) and v > 0 for v in w):
                raise ValueError(f"stage_box_weights: expected 4 positive numbers per stage, got {w!r}")

    def _check_classifier(self) -> None:
        if self.classifier not in ("softmax", "sigmoid"):
            raise ValueError(f"classifier: expected 'softmax' or 'sigmoid', got {self.classifier!r}")
        freqs = self.class_frequencies
        if self.classifier == "sigmoid" and freqs is None:
            raise ValueError(
                "class_frequencies: the 'sigmoid' classifier (federated loss) needs one frequency per "
                "class, e.g. the LVIS categories' image_count"
            )
        if freqs is not None:
            if len(freqs) != self.num_classes:
                raise ValueError(
                    f"class_frequencies: expected {self.num_classes} values (num_classes), got {len(freqs)}"
                )
            if not all(is_finite_number(f) and f >= 0 for f in freqs):
                raise ValueError("class_frequencies: expected finite values ≥ 0")

    @property
    def stages(self) -> int:
        """Number of cascade stages."""
        return len(self.stage_iou_thresholds)

    @property
    def is_resnet(self) -> bool:
        return self.backbone in RESNET_BACKBONES

    @property
    def is_efficientnet(self) -> bool:
        from .efficientnet import EFFICIENTNET_BACKBONES

        return self.backbone in EFFICIENTNET_BACKBONES


def _positive_int(name: str, v: object) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ValueError(f"{name}: expected an integer > 0, got {v!r}")
