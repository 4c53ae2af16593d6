"""Mining's feature extractors: a timm model from a local weights file (offline; the DINOv2 path of
the paper, tried on a tiny ViT whose weights the test saves itself)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from tailteacher.errors import InputError
from tailteacher.mining.embed import timm_embedder

NAME = "vit_tiny_patch16_224"  # the DINOv2 models share timm's VisionTransformer and its loading


@pytest.fixture(scope="module")
def tiny_vit():
    import timm

    torch.manual_seed(0)
    return timm.create_model(NAME, pretrained=False, num_classes=0, img_size=32).eval()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_timm_embedder_loads_local_weights_and_gives_unit_rows(tiny_vit, tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    state = {k: v.contiguous() for k, v in tiny_vit.state_dict().items()}
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"state_dict": state}, path)  # read back with weights_only=True
    embedder = timm_embedder(NAME, str(path), 32, torch.device("cpu"))
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    out = embedder(images)
    assert out.shape == (3, 192)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    mean = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1)  # timm's default for this ViT: 0.5 / 0.5
    with torch.no_grad():
        expected = torch.nn.functional.normalize(tiny_vit((images - mean) / 0.5), dim=1)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    assert embedder.key.startswith(f"timm:{NAME}:") and embedder.key.endswith(":32")


def test_timm_embedder_names_bad_weights(tmp_path):
    with pytest.raises(InputError, match=r"not found"):
        timm_embedder(NAME, str(tmp_path / "none.safetensors"), 32, torch.device("cpu"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(InputError, match=r"bad.safetensors: not a readable weights file"):
        timm_embedder(NAME, str(bad), 32, torch.device("cpu"))
    other = tmp_path / "other.safetensors"
    save_file({"something.else": torch.zeros(2)}, str(other))
    with pytest.raises(InputError, match=r"does not fit timm model"):
        timm_embedder(NAME, str(other), 32, torch.device("cpu"))
    with pytest.raises(InputError, match=r"mining.timm_model"):
        timm_embedder("no_such_model_xyz", str(other), 32, torch.device("cpu"))
