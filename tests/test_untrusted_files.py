"""Files from other people run no code: checkpoints load with weights_only, YAML safely."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tailteacher.config_io import load_config
from tailteacher.errors import InputError
from tailteacher.modeling import ModelConfig, build_backbone, load_backbone_weights
from tailteacher.modeling.checkpoint import read_state_dict


class _Payload:
    """Unpickling this calls ``os.makedirs(marker)``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.makedirs, (str(self.marker),))


def test_a_pickle_that_runs_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "code_ran"
    evil = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "extra": _Payload(marker)}, evil)
    with pytest.raises(InputError, match="cannot read"):
        read_state_dict(evil, source="--checkpoint")
    with pytest.raises(InputError, match="cannot read"):
        load_backbone_weights(build_backbone(ModelConfig(num_classes=2)), evil)
    assert not marker.exists()  # the payload never ran
    torch.load(evil, weights_only=False)  # the file does carry it: unpickling it unsafely runs it
    assert marker.exists()


def test_yaml_tags_that_build_objects_are_refused(tmp_path):
    marker = tmp_path / "code_ran"
    config = tmp_path / "evil.yaml"
    config.write_text(f"data: !!python/object/apply:os.makedirs ['{marker}']\n")
    with pytest.raises(InputError) as err:
        load_config(config)
    assert str(config) in str(err.value)
    assert not marker.exists()
