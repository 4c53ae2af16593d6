"""Detection backbones: an image batch in, a feature pyramid out.

Shapes:
    N  images      H, W  padded batch size (multiples of 32)      F  pyramid channels

Every backbone returns an ordered dict ``{"0": [N,F,H/4,W/4], "1": H/8, "2": H/16, "3": H/32,
"pool": H/64}``: the RPN uses all five levels, RoI pooling the first four (``ROI_LEVELS``), as
torchvision's Mask R-CNN does. ``trunk`` is the part a pretrained checkpoint is for (the ResNet,
or the timm ViT); ``load_backbone_weights`` loads into it.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torchvision
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

#: The pyramid levels RoIAlign pools from (strides 4, 8, 16, 32).
ROI_LEVELS = ("0", "1", "2", "3")

#: ImageNet statistics (torchvision and most timm ResNets/ViTs).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DetectionBackbone(nn.Module):
    """Base of the backbones: ``forward(images [N,3,H,W]) -> OrderedDict`` of five [N,F,·,·] levels.

    Attributes:
        out_channels: F, the width of every level (torchvision's detection heads read this name).
        trunk: the pretrained network the checkpoints are for.
        image_mean, image_std: the normalisation the trunk expects.
    """

    out_channels: int
    trunk: nn.Module
    image_mean: tuple[float, float, float] = IMAGENET_MEAN
    image_std: tuple[float, float, float] = IMAGENET_STD

    def prepare_checkpoint(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map a checkpoint of the trunk's classification model to the trunk's keys (default: as is)."""
        return state_dict

    def ignored_checkpoint_keys(self, key: str) -> bool:
        """True for checkpoint keys of parts a detector drops (a classification head)."""
        return False

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Features of the (pretrained) trunk alone, for class prototypes (Eq. 1): the pyramid on
        top of it is new, random-init detection weights. Returns ([N, D, h, w], stride)."""
        raise NotImplementedError

    def embed_crops(self, crops: torch.Tensor) -> torch.Tensor:
        """One embedding per object crop, for class prototypes (Eq. 1, ``instance_embedding:
        crop``): the trunk's deepest map averaged over space, as a classifier pools it.

        Args:
            crops: [N, 3, s, s], normalised with ``image_mean``/``image_std``.

        Returns:
            [N, D].
        """
        return self.embed(crops)[0].mean(dim=(2, 3))


class TrunkFPN(DetectionBackbone):
    """A convolutional trunk (four maps at strides 4–32) under a FeaturePyramidNetwork."""

    def __init__(self, *, trunk: nn.Module, fpn: nn.Module, out_channels: int) -> None:
        """
        Args:
            trunk: the pretrained part; what it returns is the subclass's business.
            fpn: a ``torchvision.ops.FeaturePyramidNetwork`` with ``LastLevelMaxPool``.
            out_channels: F.
        """
        super().__init__()
        self.trunk = trunk
        self.fpn = fpn
        self.out_channels = out_channels


class ResNetFPN(TrunkFPN):
    """torchvision ResNet (C2–C5) + FeaturePyramidNetwork with a max-pooled P6 ("pool").

    ``trunk`` returns ``{"0": C2, "1": C3, "2": C4, "3": C5}`` (an ``IntermediateLayerGetter`` over
    a torchvision ResNet keeps the ResNet's key names).
    """

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features: OrderedDict[str, torch.Tensor] = self.fpn(self.trunk(images))
        return features

    def ignored_checkpoint_keys(self, key: str) -> bool:
        # An ImageNet ResNet checkpoint carries its classifier; the detector has none.
        return key.startswith("fc.")

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, float]:
        # C4 at stride 16, as the ViT trunk's last block: the deepest level small objects survive.
        return self.trunk(images)["2"], 16.0

    def embed_crops(self, crops: torch.Tensor) -> torch.Tensor:
        c5: torch.Tensor = self.trunk(crops)["3"]  # C5, where the classifier pools
        return c5.mean(dim=(2, 3))


def resnet_fpn(name: str, *, out_channels: int, frozen_norm: bool) -> ResNetFPN:
    """A random-init torchvision ResNet-FPN (no download; load weights with ``load_backbone_weights``).

    Args:
        name: ``resnet18``, ``resnet34``, ``resnet50`` or ``resnet101``.
        out_channels: F, the FPN width.
        frozen_norm: FrozenBatchNorm2d (fine-tuning a pretrained trunk) instead of BatchNorm2d.
    """
    builders = {
        "resnet18": torchvision.models.resnet18,
        "resnet34": torchvision.models.resnet34,
        "resnet50": torchvision.models.resnet50,
        "resnet101": torchvision.models.resnet101,
    }
    if name not in builders:
        raise ValueError(f"backbone: unknown ResNet {name!r}; expected one of {sorted(builders)}")
    norm_layer = FrozenBatchNorm2d if frozen_norm else nn.BatchNorm2d
    resnet = builders[name](weights=None, norm_layer=norm_layer)
    c5 = int(resnet.inplanes)  # C5 width (512 · block expansion); C2–C4 halve it at each level
    widths = [c5 // 8, c5 // 4, c5 // 2, c5]
    trunk = IntermediateLayerGetter(
        resnet, return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}
    )
    fpn = FeaturePyramidNetwork(widths, out_channels, extra_blocks=LastLevelMaxPool())
    return ResNetFPN(trunk=trunk, fpn=fpn, out_channels=out_channels)
