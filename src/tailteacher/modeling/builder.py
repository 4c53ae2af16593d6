"""The one place where a ``ModelConfig`` becomes modules."""

from __future__ import annotations

import torch
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, BoxCoder, Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from .backbones import ROI_LEVELS, DetectionBackbone, resnet_fpn
from .cascade_heads import CascadeRoIHeads
from .cascade_rcnn import CascadeMaskRCNN
from .checkpoint import load_backbone_weights
from .classification import (
    ClassificationHead,
    FederatedClassSampler,
    SigmoidFederatedClassification,
    SoftmaxClassification,
)
from .config import ModelConfig
from .efficientnet import efficientnet_fpn
from .mask_head import MaskHead
from .postprocess import DetectionSelector
from .roi_align import MultiScaleRoIAlign
from .stage_head import CascadeStageHead
from .vit_pyramid import PATCH_SIZE, vit_pyramid

BOX_POOL_SIZE = 7
MASK_POOL_SIZE = 14


def build_backbone(cfg: ModelConfig) -> DetectionBackbone:
    """The random-init backbone of ``cfg`` (weights are loaded by ``build_model``)."""
    frozen_norm = cfg.resnet_norm == "frozen_batch"
    if cfg.is_resnet:
        return resnet_fpn(cfg.backbone, out_channels=cfg.fpn_channels, frozen_norm=frozen_norm)
    if cfg.is_efficientnet:
        return efficientnet_fpn(cfg.backbone, out_channels=cfg.fpn_channels, frozen_norm=frozen_norm)
    img_size = cfg.vit_img_size or -(-cfg.image_max_size // PATCH_SIZE) * PATCH_SIZE
    return vit_pyramid(cfg.backbone, out_channels=cfg.fpn_channels, img_size=img_size)


def build_transform(cfg: ModelConfig, backbone: DetectionBackbone) -> GeneralizedRCNNTransform:
    return GeneralizedRCNNTransform(
        min_size=cfg.image_min_size,
        max_size=cfg.image_max_size,
        image_mean=list(cfg.image_mean or backbone.image_mean),
        image_std=list(cfg.image_std or backbone.image_std),
        size_divisible=32,
    )


def build_rpn(cfg: ModelConfig) -> RegionProposalNetwork:
    anchors = AnchorGenerator(
        sizes=tuple((s,) for s in cfg.anchor_sizes), aspect_ratios=((0.5, 1.0, 2.0),) * len(cfg.anchor_sizes)
    )
    return RegionProposalNetwork(
        anchors,
        RPNHead(cfg.fpn_channels, anchors.num_anchors_per_location()[0]),
        fg_iou_thresh=0.7,
        bg_iou_thresh=0.3,
        batch_size_per_image=256,
        positive_fraction=0.5,
        pre_nms_top_n={"training": cfg.proposals_train, "testing": cfg.proposals_test},
        post_nms_top_n={"training": cfg.proposals_train, "testing": cfg.proposals_test},
        nms_thresh=cfg.rpn_nms_threshold,
    )


def build_classification(cfg: ModelConfig) -> ClassificationHead:
    if cfg.classifier == "softmax":
        return SoftmaxClassification()
    assert cfg.class_frequencies is not None  # ModelConfig checks it
    sampler = FederatedClassSampler(
        torch.tensor(cfg.class_frequencies, dtype=torch.float64), num_sampled=cfg.federated_classes
    )
    return SigmoidFederatedClassification(sampler=sampler)


def build_roi_heads(cfg: ModelConfig, *, classification: ClassificationHead | None = None) -> CascadeRoIHeads:
    """The cascade heads of ``cfg``; ``classification`` replaces the classifier that ``cfg`` names."""
    if classification is None:
        classification = build_classification(cfg)
    pooled_width = cfg.fpn_channels * BOX_POOL_SIZE * BOX_POOL_SIZE
    stage_heads = [
        CascadeStageHead(
            features=TwoMLPHead(pooled_width, cfg.box_head_dim),
            representation_size=cfg.box_head_dim,
            num_logits=classification.num_logits(cfg.classes),
            cls_bias=classification.initial_bias(),
        )
        for _ in range(cfg.stages)
    ]
    return CascadeRoIHeads(
        box_roi_pool=MultiScaleRoIAlign(list(ROI_LEVELS), BOX_POOL_SIZE, sampling_ratio=2),
        stage_heads=stage_heads,
        box_coders=[BoxCoder(w) for w in cfg.stage_box_weights],
        proposal_matchers=[Matcher(t, t, allow_low_quality_matches=False) for t in cfg.stage_iou_thresholds],
        fg_bg_sampler=BalancedPositiveNegativeSampler(
            cfg.roi_batch_size_per_image, cfg.roi_positive_fraction
        ),
        classification=classification,
        mask_roi_pool=MultiScaleRoIAlign(list(ROI_LEVELS), MASK_POOL_SIZE, sampling_ratio=2),
        mask_head=MaskHead(
            in_channels=cfg.fpn_channels, conv_channels=(cfg.mask_head_channels,) * cfg.mask_head_convs
        ),
        detection_selector=DetectionSelector(
            score_threshold=cfg.score_threshold,
            nms_threshold=cfg.nms_threshold,
            max_detections=cfg.detections_per_image,
        ),
    )


def build_model(cfg: ModelConfig, *, classification: ClassificationHead | None = None) -> CascadeMaskRCNN:
    """A Cascade Mask R-CNN as ``cfg`` describes; backbone weights from ``cfg.weights`` (a file or
    ``package:NAME``) if set.

    Args:
        cfg: the model's description.
        classification: a classifier head with its injected loss, e.g.
            ``SoftmaxClassification(loss_fn=my_loss)``; None = the one ``cfg.classifier`` names.
    """
    backbone = build_backbone(cfg)
    if cfg.weights is not None:
        load_backbone_weights(backbone, cfg.weights)
    return CascadeMaskRCNN(
        transform=build_transform(cfg, backbone),
        backbone=backbone,
        rpn=build_rpn(cfg),
        roi_heads=build_roi_heads(cfg, classification=classification),
        num_classes=cfg.classes,
    )
