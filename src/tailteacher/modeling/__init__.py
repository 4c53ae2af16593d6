"""Models: Cascade Mask R-CNN on torchvision parts with soft-target classification, and backbones.

Layout (the pipeline, left to right):
    config.py          ModelConfig, the plain description ``build_model`` reads
    backbones.py       ResNet-FPN (torchvision) and the DetectionBackbone base
    vit_pyramid.py     timm ViT + ViTDet simple feature pyramid
    efficientnet.py    timm EfficientNet-Lite + FPN, and the efficientnet_lite_pytorch key map
    checkpoint.py      backbone weights from a local file or an installed package
    cascade_targets.py stage matching, sampling and soft targets
    classification.py  softmax / sigmoid-federated classifier heads and their losses
    stage_head.py      one stage's box head
    mask_head.py       class-agnostic mask head, targets, loss
    postprocess.py     score threshold, per-class NMS, top-K
    cascade_heads.py   the cascade RoI heads (training losses, inference ensemble)
    cascade_rcnn.py    CascadeMaskRCNN (transform → backbone → RPN → heads)
    builder.py         ModelConfig → modules
"""

from .backbones import DetectionBackbone, ResNetFPN, resnet_fpn
from .builder import build_backbone, build_model
from .cascade_heads import CascadeRoIHeads
from .cascade_rcnn import CascadeMaskRCNN, Predictor
from .cascade_targets import BACKGROUND, ImageTargets, StageTargets, match_proposals, stage_targets
from .checkpoint import PACKAGED_WEIGHTS, load_backbone_weights, read_state_dict, resolve_weights
from .classification import (
    ClassificationHead,
    FederatedClassSampler,
    SigmoidFederatedClassification,
    SoftmaxClassification,
    federated_sigmoid_loss,
    softmax_targets,
)
from .config import ModelConfig
from .efficientnet import EfficientNetFPN, efficientnet_fpn, map_lite_checkpoint
from .mask_head import MaskHead
from .postprocess import DetectionSelector, ImageDetections
from .stage_head import CascadeStageHead
from .vit_pyramid import SimpleFeaturePyramid, ViTPyramid, vit_pyramid

__all__ = [
    "BACKGROUND",
    "PACKAGED_WEIGHTS",
    "CascadeMaskRCNN",
    "CascadeRoIHeads",
    "CascadeStageHead",
    "ClassificationHead",
    "DetectionBackbone",
    "DetectionSelector",
    "EfficientNetFPN",
    "FederatedClassSampler",
    "ImageDetections",
    "ImageTargets",
    "MaskHead",
    "ModelConfig",
    "Predictor",
    "ResNetFPN",
    "SigmoidFederatedClassification",
    "SimpleFeaturePyramid",
    "SoftmaxClassification",
    "StageTargets",
    "ViTPyramid",
    "build_backbone",
    "build_model",
    "efficientnet_fpn",
    "federated_sigmoid_loss",
    "load_backbone_weights",
    "map_lite_checkpoint",
    "match_proposals",
    "read_state_dict",
    "resnet_fpn",
    "resolve_weights",
    "softmax_targets",
    "stage_targets",
    "vit_pyramid",
]
