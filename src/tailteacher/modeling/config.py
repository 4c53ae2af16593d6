"""ModelConfig: the one description of a Cascade Mask R-CNN — the run config's ``model`` section
and what ``build_model`` turns into modules.

A pydantic model: unknown keys are errors, values are not coerced (``"1"`` is not an int, but a
YAML list is a tuple), frozen once checked, and every check says what to change. The run config
embeds it as is (``model.*`` keys, docs/engine.md); a library user builds it in Python. The classes
(``num_classes``, ``class_frequencies``) describe the data, not the model: the pipeline sets them
from the data set (``with_classes``), they are never written to a saved config or its hash, and
``build_model`` needs ``num_classes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field, model_validator

from ..numbers import is_finite_number
from ..settings import StrictModel

Classifier = Literal["softmax", "sigmoid"]
ResNetNorm = Literal["batch", "frozen_batch"]

#: Backbone names served by torchvision ResNet + FPN; any other name but the EfficientNets
#: (``efficientnet.EFFICIENTNET_BACKBONES``) is a timm ViT (simple pyramid).
RESNET_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")

# Tuples arrive from YAML as lists: these accept both, whatever the model's strictness.
Ints = Annotated[tuple[int, ...], Field(strict=False)]
Floats = Annotated[tuple[float, ...], Field(strict=False)]
RGB = Annotated[tuple[float, float, float], Field(strict=False)]
BoxWeights = Annotated[
    tuple[Annotated[tuple[float, float, float, float], Field(strict=False)], ...], Field(strict=False)
]


class ModelConfig(StrictModel):
    """Everything ``build_model`` needs. Defaults: detectron2's and torchvision's (800/1333 px, 300
    detections) with the CPU-sized heads of the embedded benchmark (64-channel FPN, 256-d box head).

    Construct with keywords, e.g. ``ModelConfig(num_classes=3, image_min_size=96, image_max_size=96)``;
    ``ValueError`` (pydantic's ``ValidationError``) names the field and what to change.
    """

    num_classes: int | None = Field(
        default=None, exclude=True, description="C foreground classes (labels 0…C−1); set from the data"
    )
    class_frequencies: Floats | None = Field(
        default=None,
        exclude=True,
        description="[C] per-class frequencies (image counts), needed by the sigmoid classifier; "
        "set from the data",
    )
    backbone: str = Field(
        default="resnet18",
        min_length=1,
        description="resnet18/34/50/101 (torchvision ResNet + FPN), efficientnet_lite0…4 (timm "
        "EfficientNet-Lite + FPN), or a timm ViT name (e.g. eva02_large_patch14_448.mim_m38m; "
        "simple pyramid)",
    )
    weights: str | None = Field(
        default=None,
        description="local file of pretrained backbone weights (.safetensors/.pt/.pth), or "
        "package:efficientnet_lite0 (shipped by a pip package); null: random init",
    )
    resnet_norm: ResNetNorm = Field(
        default="batch",
        description="ResNet/EfficientNet trunk norm: batch (random init) or frozen_batch (pretrained trunk)",
    )
    vit_img_size: int | None = Field(
        default=None,
        gt=0,
        description="a ViT's position-embedding grid size; null: image_max_size rounded up to 16",
    )
    fpn_channels: int = Field(default=64, gt=0, description="channels of the feature pyramid")
    image_min_size: int | Ints = Field(
        default=800,
        description="the model resizes the shorter side to this (a list: one drawn per training image)",
    )
    image_max_size: int = Field(
        default=1333, gt=0, description="... unless the longer side would exceed this"
    )
    image_mean: RGB | None = Field(
        default=None, description="RGB normalisation mean (0–1 scale); null: the backbone's"
    )
    image_std: RGB | None = Field(default=None, description="RGB normalisation std; null: the backbone's")
    anchor_sizes: Ints = Field(
        default=(32, 64, 128, 256, 512),
        description="one anchor size per pyramid level (strides 4, 8, 16, 32, 64)",
    )
    box_head_dim: int = Field(default=256, gt=0, description="width of each cascade stage's 2×FC box head")
    mask_head_channels: int = Field(default=64, gt=0, description="channels of the mask head's convolutions")
    mask_head_convs: int = Field(default=2, ge=0, description="3×3 convolutions in the mask head")
    classifier: Classifier = Field(
        default="softmax", description="box classifier: softmax over C+1 (background last) or C sigmoids"
    )
    federated_classes: int = Field(
        default=50, gt=0, description="classes per iteration in the sigmoid classifier's federated loss"
    )
    stage_iou_thresholds: Floats = Field(
        default=(0.5, 0.6, 0.7), description="one foreground IoU threshold per cascade stage"
    )
    stage_box_weights: BoxWeights = Field(
        default=((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0)),
        description="one box-coder weight 4-tuple per cascade stage",
    )
    roi_batch_size_per_image: int = Field(
        default=512, gt=0, description="RoIs sampled per image for the first cascade stage (CPU: 64–128)"
    )
    roi_positive_fraction: float = Field(default=0.25, description="foreground share of the sampled RoIs")
    proposals_train: int = Field(
        default=2000, gt=0, description="RPN proposals kept before and after NMS per image while training"
    )
    proposals_test: int = Field(
        default=1000, gt=0, description="RPN proposals kept before and after NMS per image at inference"
    )
    rpn_nms_threshold: float = Field(default=0.7, description="the RPN's NMS IoU")
    detections_per_image: int = Field(
        default=300, gt=0, description="detections kept per image (LVIS AP: 300)"
    )
    score_threshold: float = Field(
        default=0.0001, ge=0, lt=1, description="detections below this class score are dropped"
    )
    nms_threshold: float = Field(default=0.5, description="per-class NMS IoU of the detections")

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.num_classes is not None:
            _positive_int("num_classes", self.num_classes)
        self._check_weights()
        sizes = self.image_min_size if isinstance(self.image_min_size, tuple) else (self.image_min_size,)
        if not sizes:
            raise ValueError("image_min_size: expected an integer or a non-empty list of integers")
        for s in sizes:
            _positive_int("image_min_size", s)
        if max(sizes) > self.image_max_size:
            raise ValueError(
                f"image_min_size ({self.image_min_size}) must not exceed "
                f"image_max_size ({self.image_max_size})"
            )
        if len(self.anchor_sizes) != 5:
            raise ValueError(
                f"anchor_sizes: expected 5 sizes (one per pyramid level, strides 4…64), "
                f"got {len(self.anchor_sizes)}"
            )
        for s in self.anchor_sizes:
            _positive_int("anchor_sizes", s)
        for name, stats in (("image_mean", self.image_mean), ("image_std", self.image_std)):
            if stats is not None and not all(is_finite_number(v) for v in stats):
                raise ValueError(f"{name}: expected 3 finite numbers (one per RGB channel), got {stats!r}")
        if self.image_std is not None and min(self.image_std) <= 0:
            raise ValueError(f"image_std: expected values > 0, got {self.image_std!r}")
        self._check_stages()
        self._check_classifier()
        for name in ("roi_positive_fraction", "rpn_nms_threshold", "nms_threshold"):
            v = getattr(self, name)
            if not is_finite_number(v) or not 0 < v <= 1:
                raise ValueError(f"{name}: expected a number in (0, 1], got {v!r}")
        return self

    def with_classes(self, num_classes: int, class_frequencies: Sequence[float] | None = None) -> ModelConfig:
        """This model for a data set's classes: C, and (sigmoid classifier) their frequencies [C]."""
        freqs = tuple(float(f) for f in class_frequencies) if class_frequencies is not None else None
        return self.model_validate(
            {**self.model_dump(), "num_classes": num_classes, "class_frequencies": freqs}
        )

    @property
    def classes(self) -> int:
        """C; ``ValueError`` when the config was not given its data's classes."""
        if self.num_classes is None:
            raise ValueError("num_classes: not set; give ModelConfig(num_classes=C) or use with_classes(C)")
        return self.num_classes

    def _check_weights(self) -> None:
        from .checkpoint import packaged_weights

        if self.weights is None:
            return
        if not self.weights:
            raise ValueError(f"weights: expected a file path or 'package:NAME', got {self.weights!r}")
        entry = packaged_weights(self.weights)
        if entry is not None and entry.backbone != self.backbone:
            raise ValueError(
                f"weights: {self.weights!r} holds weights for backbone {entry.backbone!r}, "
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
        freqs = self.class_frequencies
        if self.num_classes is None:  # a section of a run config: the data's classes come later
            if freqs is not None:
                raise ValueError("class_frequencies: expected num_classes too")
            return
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
