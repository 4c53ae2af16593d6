"""`_base_` in a config file (D108): a file builds on another, its keys merged over the other's."""

from __future__ import annotations

import pytest

from tailteacher.config_io import PACKAGED_CONFIGS, load_config, merge_config_dicts
from tailteacher.errors import InputError


def test_merge_is_deep_for_mappings_and_replaces_everything_else():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 3}
    child = {"a": {"y": [9]}, "c": {"z": 1}}
    assert merge_config_dicts(base, child) == {"a": {"x": 1, "y": [9]}, "b": 3, "c": {"z": 1}}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 3}  # unchanged


def test_a_file_builds_on_a_relative_file_and_on_a_shipped_config(tmp_path):
    (tmp_path / "parent.yaml").write_text("_base_: demo\ntrain:\n  max_steps: 7\n")
    (tmp_path / "child.yaml").write_text("_base_: parent.yaml\nstudent:\n  max_steps: 3\n")
    demo = load_config("demo")
    child = load_config(tmp_path / "child.yaml", ["train.lr=0.01"])
    assert (child.train.max_steps, child.student.max_steps, child.train.lr) == (7, 3, 0.01)
    assert child.model == demo.model and child.data == demo.data
    assert child.train.warmup_steps == demo.train.warmup_steps


def test_the_shipped_scarce_config_is_demo_with_a_quarter_of_the_labels():
    demo, scarce = load_config("demo"), load_config("scarce")
    assert "_base_: demo" in (PACKAGED_CONFIGS / "scarce.yaml").read_text()
    assert scarce.data.train_json == "runs/data/demo_f25/train.json"
    assert (scarce.train.max_steps, scarce.student.max_steps) == (600, 480)
    assert scarce.student.ignore_threshold == 0.1
    assert scarce.model == demo.model and scarce.targets == demo.targets
    assert demo.student.pseudo_labels == "calibrated"
    assert scarce.student.pseudo_labels == "calibrated"  # D124: soft's AP, below the teacher's ECE
    # D124: the rows reweighted by the labeled counts, τ on the foreground mass; demo too since D126.
    assert (scarce.student.logit_adjustment, scarce.student.threshold_on) == (0.5, "foreground")
    assert (demo.student.logit_adjustment, demo.student.threshold_on) == (0.5, "foreground")  # D126


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("_base_: 3\n", "expected a config path"),
        ("_base_: nowhere.yaml\n", "no config file or shipped config 'nowhere.yaml'"),
        ("_base_: me.yaml\n", "a cycle"),
    ],
)
def test_bad_bases_are_named_with_the_file_and_key(tmp_path, text, message):
    (tmp_path / "me.yaml").write_text(text)
    with pytest.raises(InputError) as err:
        load_config(tmp_path / "me.yaml")
    assert "me.yaml" in str(err.value) and "_base_" in str(err.value) and message in str(err.value)


def test_an_unknown_key_in_the_child_is_still_refused(tmp_path):
    (tmp_path / "c.yaml").write_text("_base_: demo\nstudent:\n  max_step: 3\n")
    with pytest.raises(InputError, match="max_step"):
        load_config(tmp_path / "c.yaml")


def test_a_bare_name_is_the_shipped_config_whatever_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").write_text("train:\n  lr: 4e-5\n")  # a stray file called demo
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.yaml").write_text("_base_: demo\n")
    assert load_config(tmp_path / "sub" / "x.yaml").train.lr == load_config("scarce").train.lr == 1e-3
    (tmp_path / "sub" / "y.yaml").write_text("_base_: x.yaml\nstudent:\n  max_steps: 5\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative bases resolve from the file's folder
    assert load_config(tmp_path / "sub" / "y.yaml").student.max_steps == 5


def test_a_problem_in_the_base_names_the_base_file(tmp_path):
    (tmp_path / "base.yaml").write_text("_base_: demo\ntrain:\n  lrate: 1\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\nstudent:\n  max_steps: -1\n")
    with pytest.raises(InputError) as err:
        load_config(tmp_path / "child.yaml")
    text = str(err.value)
    assert f"{tmp_path / 'base.yaml'}: config: train.lrate" in text
    assert f"{tmp_path / 'child.yaml'}: config: student.max_steps" in text
