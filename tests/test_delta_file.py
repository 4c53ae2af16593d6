"""pipeline.delta.load_delta: Δ for Eq. 5 from the calibrate stage's file, shrunk per group (D100)."""

import json

import pytest
import torch
from safetensors.torch import save_file

from tailteacher.data.lvis_json import load_lvis
from tailteacher.errors import InputError
from tailteacher.pipeline.delta import load_delta
from test_evaluation_lvis import hand_case


def _train_json(tmp_path, frequency=None):
    gt, _ = hand_case()
    for im in gt["images"]:
        im["file_name"] = f"{im['id']}.png"
    for c in gt["categories"]:
        c["frequency"] = frequency or c["frequency"]
    path = tmp_path / "train.json"
    path.write_text(json.dumps(gt))
    return load_lvis(path, tmp_path)


@pytest.fixture
def data(tmp_path):
    return _train_json(tmp_path)


def _groups(data):
    return [c["frequency"] for c in data.categories]


def test_shrunk_toward_the_group_and_zero_strength_is_the_file(tmp_path, data):
    assert len(set(_groups(data))) == data.num_classes  # one class per group: Δ_group = Δ_c
    path = tmp_path / "delta.safetensors"
    delta = torch.tensor([0.5, -0.25, 0.125])
    save_file({"delta": delta, "count": torch.tensor([1, 0, 7])}, str(path))
    assert torch.equal(load_delta(path, data, 0.0), delta)
    # each class alone in its group: shrinking toward itself changes nothing, except a class with
    # no detection, whose group has none either (pooled Δ 0)
    assert load_delta(path, data, 10.0).tolist() == [0.5, 0.0, 0.125]


def test_two_classes_of_one_group(tmp_path):
    data = _train_json(tmp_path, frequency="r")
    path = tmp_path / "delta.safetensors"
    save_file({"delta": torch.tensor([0.8, 0.0, 0.0]), "count": torch.tensor([1, 3, 0])}, str(path))
    # pooled: (1·0.8 + 3·0 + 0) / 4 = 0.2; κ = 4
    out = load_delta(path, data, 4.0)
    torch.testing.assert_close(out, torch.tensor([(0.8 + 0.8) / 5, 0.8 / 7, 0.2]))


def test_bad_files_are_input_errors(tmp_path, data):
    path = tmp_path / "delta.safetensors"
    with pytest.raises(InputError, match="cannot read"):
        load_delta(path, data, 10.0)
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="cannot read"):
        load_delta(path, data, 10.0)
    save_file({"delta": torch.zeros(5)}, str(path))
    with pytest.raises(InputError, match="5 classes, the data 3"):
        load_delta(path, data, 0.0)
    save_file({"delta": torch.zeros(3)}, str(path))  # a file from before D100
    assert torch.equal(load_delta(path, data, 0.0), torch.zeros(3))
    with pytest.raises(InputError, match=r"no per-class 'count'.*delta_shrinkage: 0"):
        load_delta(path, data, 10.0)
