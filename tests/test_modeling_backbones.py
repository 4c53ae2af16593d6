"""Backbones (ResNet-FPN, timm ViT + simple pyramid), local checkpoints, and ModelConfig checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file
from torchvision.ops.misc import FrozenBatchNorm2d

from tailteacher.modeling import ModelConfig, build_backbone, build_model, load_backbone_weights

VIT = "vit_tiny_patch16_224"


def _vit_config(**overrides: object) -> ModelConfig:
    base: dict[str, object] = {
        "num_classes": 3,
        "backbone": VIT,
        "image_min_size": 64,
        "image_max_size": 64,
        "fpn_channels": 16,
        "box_head_dim": 32,
        "mask_head_channels": 8,
        "anchor_sizes": (8, 16, 32, 64, 128),
        "roi_batch_size_per_image": 32,
        "proposals_train": 100,
        "proposals_test": 50,
    }
    base.update(overrides)
    return ModelConfig(**base)  # type: ignore[arg-type]


def test_resnet_fpn_levels() -> None:
    backbone = build_backbone(ModelConfig(num_classes=3, fpn_channels=24))
    out = backbone(torch.rand(2, 3, 64, 96))
    assert list(out) == ["0", "1", "2", "3", "pool"]
    assert [tuple(v.shape[-2:]) for v in out.values()] == [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]
    assert all(v.shape[:2] == (2, 24) for v in out.values())


def test_vit_simple_pyramid_levels() -> None:
    backbone = build_backbone(_vit_config())
    out = backbone(torch.rand(1, 3, 64, 96))
    assert [tuple(v.shape[-2:]) for v in out.values()] == [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]


def test_vit_cascade_forward_backward_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    model = build_model(_vit_config())
    model.train()
    masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
    masks[0, 8:30, 8:30] = 1
    masks[1, 30:60, 20:50] = 1
    targets = [
        {
            "boxes": torch.tensor([[8.0, 8, 30, 30], [20, 30, 50, 60]]),
            "labels": torch.tensor([0, 2]),
            "masks": masks,
        }
    ]
    losses = model([torch.rand(3, 64, 64)], targets)
    assert isinstance(losses, dict)
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        det = model([torch.rand(3, 64, 64)])[0]
    assert det["class_scores"].shape[1] == 3


def test_torchvision_resnet_checkpoint_loads_into_the_trunk(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)  # an ImageNet classifier's keys, fc included
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = build_model(ModelConfig(num_classes=3, weights=str(path)))
    trunk = model.backbone.trunk.state_dict()
    assert torch.equal(trunk["layer3.1.conv2.weight"], reference.state_dict()["layer3.1.conv2.weight"])
    assert torch.equal(trunk["bn1.running_var"], reference.state_dict()["bn1.running_var"])


def test_safetensors_checkpoint_and_frozen_norm(tmp_path: Path) -> None:
    reference = torchvision.models.resnet18(weights=None)
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    path = tmp_path / "resnet18.safetensors"
    save_file(state, str(path))
    backbone = build_backbone(ModelConfig(num_classes=3, resnet_norm="frozen_batch"))
    load_backbone_weights(backbone, path)
    assert torch.equal(backbone.trunk.state_dict()["layer1.0.bn1.weight"], state["layer1.0.bn1.weight"])
    assert torch.equal(
        backbone.trunk.state_dict()["layer1.0.bn1.running_var"], state["layer1.0.bn1.running_var"]
    )
    assert isinstance(backbone.trunk.layer1[0].bn1, FrozenBatchNorm2d)  # the ImageNet statistics stay fixed


def test_timm_vit_checkpoint_at_another_resolution_is_resampled(tmp_path: Path) -> None:
    reference = timm.create_model(VIT, pretrained=False, img_size=224)  # 14×14 grid, classifier head
    path = tmp_path / "vit.pth"
    torch.save(reference.state_dict(), path)
    model = build_model(_vit_config(weights=str(path)))  # 64 px: a 4×4 grid
    trunk = model.backbone.trunk.state_dict()
    assert trunk["pos_embed"].shape == (1, 1 + 16, 192)
    assert torch.equal(trunk["blocks.3.mlp.fc1.weight"], reference.state_dict()["blocks.3.mlp.fc1.weight"])


def test_wrong_key_lists_missing_and_unexpected_keys(tmp_path: Path) -> None:
    state = torchvision.models.resnet18(weights=None).state_dict()
    state["layer9.conv.weight"] = state.pop("layer2.0.conv1.weight")
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    backbone = build_backbone(ModelConfig(num_classes=3))
    before = backbone.trunk.state_dict()["conv1.weight"].clone()
    with pytest.raises(ValueError) as err:
        load_backbone_weights(backbone, path)
    message = str(err.value)
    assert "missing keys (1): layer2.0.conv1.weight" in message
    assert "unexpected keys (1): layer9.conv.weight" in message
    assert "conv1.weight: checkpoint [64, 3, 3, 3] vs model [64, 3, 7, 7]" in message
    assert torch.equal(backbone.trunk.state_dict()["conv1.weight"], before)  # nothing half-loaded


def test_missing_or_unreadable_checkpoint_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no file"):
        build_model(ModelConfig(num_classes=3, weights=str(tmp_path / "absent.pth")))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        load_backbone_weights(build_backbone(ModelConfig(num_classes=3)), junk)
    other = tmp_path / "weights.npz"
    other.write_bytes(b"")
    with pytest.raises(ValueError, match="safetensors"):
        load_backbone_weights(build_backbone(ModelConfig(num_classes=3)), other)


def test_wrapped_checkpoint_is_unwrapped(tmp_path: Path) -> None:
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "wrapped.pt"
    torch.save({"model": state, "epoch": 3}, path)
    backbone = build_backbone(ModelConfig(num_classes=3))
    load_backbone_weights(backbone, path)
    loaded = backbone.trunk.state_dict()
    for key in ("conv1.weight", "layer4.1.conv2.weight", "layer2.0.bn1.running_mean"):
        assert torch.equal(loaded[key], state[key]), key


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"num_classes": 0}, "num_classes"),
        ({"classifier": "sigmoid"}, "class_frequencies"),
        ({"class_frequencies": (1.0, 2.0)}, "class_frequencies"),
        ({"classifier": "focal"}, "classifier"),
        ({"stage_box_weights": ((10.0, 10.0, 5.0, 5.0),)}, "stage_box_weights"),
        ({"stage_iou_thresholds": (0.5, 1.2, 0.7)}, "stage_iou_thresholds"),
        ({"anchor_sizes": (32, 64)}, "anchor_sizes"),
        ({"score_threshold": -0.1}, "score_threshold"),
        ({"resnet_norm": "group"}, "resnet_norm"),
    ],
)
def test_config_errors_say_what_to_change(fields: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"num_classes": 3, **fields}
    with pytest.raises(ValueError, match=message):
        ModelConfig(**values)  # type: ignore[arg-type]


def test_unknown_backbone_name() -> None:
    with pytest.raises(ValueError, match="neither a ResNet"):
        build_backbone(ModelConfig(num_classes=3, backbone="not_a_model_at_all"))


def test_eva02_patch14_checkpoint_loads_into_the_patch16_pyramid(tmp_path: Path) -> None:
    # The paper's EVA-02-L is this architecture at large width ("p14to16"): a config away.
    name = "eva02_tiny_patch14_224.mim_in22k"
    reference = timm.create_model(name, pretrained=False)
    path = tmp_path / "eva02.pth"
    torch.save(reference.state_dict(), path)
    model = build_model(_vit_config(backbone=name, image_max_size=96, weights=str(path)))
    trunk = model.backbone.trunk
    assert trunk.patch_embed.proj.weight.shape[-2:] == (16, 16)
    loaded, source = trunk.state_dict(), reference.state_dict()
    for key in ("blocks.0.attn.qkv.weight", "blocks.11.mlp.fc2.weight", "norm.weight"):
        if key in loaded:
            assert torch.equal(loaded[key], source[key]), key
    assert torch.equal(loaded["blocks.0.attn.qkv.weight"], source["blocks.0.attn.qkv.weight"])
    model.train()
    masks = torch.zeros(1, 64, 96, dtype=torch.uint8)
    masks[0, 8:30, 8:30] = 1
    target = {"boxes": torch.tensor([[8.0, 8, 30, 30]]), "labels": torch.tensor([1]), "masks": masks}
    losses = model([torch.rand(3, 64, 96)], [target])
    assert isinstance(losses, dict)
    assert all(torch.isfinite(v) for v in losses.values())


def test_embed_gives_trunk_features_at_stride_16_for_prototypes():
    import torch

    from tailteacher.modeling import ModelConfig, build_model

    for cfg in (
        ModelConfig(num_classes=3),
        ModelConfig(num_classes=3, backbone="vit_tiny_patch16_224", image_min_size=64, image_max_size=64),
    ):
        backbone = build_model(cfg).backbone.eval()
        features, stride = backbone.embed(torch.rand(1, 3, 64, 64))
        assert stride == 16.0 and features.shape[-2:] == (4, 4)
        # The trunk's own width (ResNet-18 C4: 256, ViT-tiny: 192), not the pyramid's 64 channels.
        assert features.shape[1] in (256, 192)
        # Object crops: one vector each from the deepest map (ResNet-18 C5: 512; ViT: its last block).
        with torch.no_grad():
            crops = torch.rand(5, 3, 32, 32)
            embedded = backbone.embed_crops(crops)
            last = backbone.trunk(crops)["3"] if cfg.backbone == "resnet18" else backbone.embed(crops)[0]
        assert tuple(embedded.shape) == (5, 512 if cfg.backbone == "resnet18" else 192)
        torch.testing.assert_close(embedded, last.mean(dim=(2, 3)))
