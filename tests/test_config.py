"""Config files: errors name the key and what is allowed, --set overrides, shipped configs, saving."""

import argparse
from pathlib import Path

import pytest
import yaml

from tailteacher.config import Config
from tailteacher.config_io import add_config_arguments, config_from_args, config_reference, load_config
from tailteacher.engine import config_hash, dump_config, save_config
from tailteacher.errors import InputError

ROOT = Path(__file__).parents[1]
MINIMAL = {
    "data": {"train_json": "t.json", "val_json": "v.json", "image_root": "img"},
    "train": {"max_steps": 100},
    "run": {"run_dir": "runs/x"},
}


def _write(tmp_path, obj, name="c.yaml"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else yaml.safe_dump(obj))
    return path


def _problems(path, overrides=()):
    with pytest.raises(InputError) as info:
        load_config(path, overrides)
    return {p.field: p for p in info.value.problems}


def _with(section, **values):
    return {**MINIMAL, section: {**MINIMAL.get(section, {}), **values}}


def test_minimal_config_gets_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, MINIMAL))
    assert cfg.targets.eps == 0.1 and cfg.targets.gamma == 1.5 and cfg.model.detections_per_image == 300
    assert cfg.train.lr == 4e-5 and cfg.run.resume is False


def test_unknown_key_names_the_dotted_path_and_lists_allowed_keys(tmp_path):
    problems = _problems(_write(tmp_path, _with("train", lrate=0.1)))
    p = problems["train.lrate"]
    assert p.file == str(tmp_path / "c.yaml")
    assert "unknown key" in p.message and "allowed keys in train:" in p.message
    assert "lr," in p.message and "warmup_steps" in p.message
    assert "train.lrate" in str(InputError(list(problems.values())))


def test_unknown_section_lists_the_sections(tmp_path):
    p = _problems(_write(tmp_path, {**MINIMAL, "trian": {}}))["trian"]
    assert "allowed keys in (top level): data, model, targets, train, run" in p.message


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("train", "lr", "fast", "expected a number, got 'fast'"),
        ("train", "max_steps", 10.5, "expected an integer or null, got 10.5"),
        ("train", "accumulate", "2", "expected an integer, got '2'"),  # strict: no coercion
        ("train", "amp", "yes please", "expected true or false"),
        ("model", "classifier", "softmaxx", "expected one of 'softmax', 'sigmoid', got 'softmaxx'"),
        ("targets", "kind", "smooth", "expected one of 'onehot', 'uniform', 'similarity'"),
        ("train", "betas", [0.9], "at least 2"),
        ("train", "betas", "0.9", "expected a list of numbers"),
        ("targets", "eps", 1.5, "less than or equal to 1, got 1.5"),
        ("data", "batch_size", 0, "greater than 0, got 0"),
    ],
)
def test_wrong_type_or_value_names_the_key_and_what_was_expected(tmp_path, section, key, value, expected):
    problems = _problems(_write(tmp_path, _with(section, **{key: value})))
    assert expected in problems[f"{section}.{key}"].message


def test_a_section_given_as_a_value_and_a_missing_key(tmp_path):
    raw = {**MINIMAL, "model": 5, "data": {"val_json": "v.json", "image_root": "i"}}
    problems = _problems(_write(tmp_path, raw))
    assert "expected a mapping with keys backbone, weights" in problems["model"].message
    assert problems["data.train_json"].message == "missing; expected a string"
    assert (
        "missing; expected a mapping with keys"
        in _problems(_write(tmp_path, {"data": {}}, "d.yaml"))["run"].message
    )


def test_every_problem_is_reported_at_once(tmp_path):
    raw = {**_with("train", lr="x", warmup="y"), "model": {"fpn_channels": -1}}
    assert set(_problems(_write(tmp_path, raw))) == {"train.lr", "train.warmup", "model.fpn_channels"}


def test_cross_field_checks_name_their_section(tmp_path):
    both = _with("train", epochs=3)
    assert "exactly one of max_steps and epochs" in _problems(_write(tmp_path, both))["train"].message
    sizes = _with("model", image_min_size=900, image_max_size=800)
    assert "must not exceed image_max_size" in _problems(_write(tmp_path, sizes))["model"].message


def test_yaml_reads_exponents_without_a_dot_as_numbers(tmp_path):
    text = yaml.safe_dump(MINIMAL) + ""
    text = text.replace("max_steps: 100", "max_steps: 100\n  lr: 4e-5\n  weight_decay: 1E+0")
    cfg = load_config(_write(tmp_path, text))
    assert cfg.train.lr == 4e-5 and cfg.train.weight_decay == 1.0


def test_broken_yaml_and_missing_file_are_input_errors(tmp_path):
    problems = _problems(_write(tmp_path, "data: [unclosed\n"))
    (where,) = problems
    assert where.startswith("line ")
    assert _problems(_write(tmp_path, "- a list\n"))["(top level)"].message.startswith("expected a mapping")
    assert "cannot read" in _problems(tmp_path / "absent.yaml")["-"].message


def test_set_overrides_are_yaml_values(tmp_path):
    path = _write(tmp_path, MINIMAL)
    cfg = load_config(
        path,
        [
            "train.lr=1e-4",
            "train.grad_clip=1",
            "train.ema_momentum=0.999",
            "train.betas=[0.8, 0.9]",
            "model.weights=/w/eva.pt",
            "data.heldout_json=null",
            "train.amp=true",
            "targets.kind=uniform",
            "train.max_steps=null",
            "train.epochs=2",
        ],
    )
    assert cfg.train.lr == 1e-4 and cfg.train.grad_clip == 1.0 and cfg.train.betas == [0.8, 0.9]
    assert cfg.model.weights == "/w/eva.pt" and cfg.data.heldout_json is None and cfg.train.amp is True
    assert cfg.targets.kind == "uniform" and cfg.train.epochs == 2 and cfg.train.max_steps is None
    # a section the file does not have is created
    assert load_config(path, ["targets.eps=0.2"]).targets.eps == 0.2


def test_unknown_set_path_is_an_error_listing_allowed_keys(tmp_path):
    path = _write(tmp_path, MINIMAL)
    problems = _problems(path, ["train.lrr=0.1", "optim.lr=1", "train.lr.value=1"])
    assert problems["train.lrr"].file == "--set train.lrr=0.1"
    assert "allowed keys in train: optimizer, lr," in problems["train.lrr"].message
    assert "allowed keys in (top level): data, model" in problems["optim.lr"].message
    assert problems["train.lr.value"].message == "train.lr is a value, not a section"
    assert "KEY.PATH=VALUE" in _problems(path, ["train.lr"])["train.lr"].message


def test_a_bad_set_value_is_blamed_on_the_set(tmp_path):
    p = _problems(_write(tmp_path, MINIMAL), ["train.lr=fast"])["train.lr"]
    assert p.file == "--set train.lr=fast" and "expected a number, got 'fast'" in p.message


def test_command_line_arguments(tmp_path):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    path = _write(tmp_path, MINIMAL)
    args = parser.parse_args([str(path), "--set", "train.seed=4", "--resume"])
    cfg = config_from_args(args)
    assert cfg.train.seed == 4 and cfg.run.resume is True


@pytest.mark.parametrize("name", ["demo", "bench", "lvis_eva02_l", "scarce"])
def test_shipped_configs_validate_and_resolve_by_name(name):
    cfg = load_config(name)  # no such file here: the config shipped in the package
    assert cfg.targets.eps == 0.1 and cfg.targets.gamma == 1.5
    assert load_config(ROOT / "src" / "tailteacher" / "configs" / f"{name}.yaml") == cfg


def test_a_folder_of_the_same_name_does_not_hide_a_shipped_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()  # e.g. a run folder
    assert load_config("demo") == load_config(ROOT / "src" / "tailteacher" / "configs" / "demo.yaml")


def test_demo_is_a_cpu_preset_and_lvis_is_the_papers_setup():
    demo = load_config("demo")
    assert demo.train.device == "cpu" and not demo.train.amp and demo.train.deterministic
    assert demo.data.image_size == 96 and demo.data.batch_size == 8 and demo.model.fpn_channels == 64
    assert demo.model.backbone == "efficientnet_lite0" and demo.model.weights == "package:efficientnet_lite0"
    assert demo.data.train_json == "runs/data/demo/train.json"
    assert not demo.student.unsup_mask_loss and demo.student.support == "nonzero"  # D59
    lvis = load_config("lvis_eva02_l")
    assert lvis.model.backbone.startswith("eva02_large_patch14") and lvis.model.weights
    assert (
        lvis.train.lr == 4e-5 and lvis.train.optimizer == "adamw" and lvis.model.detections_per_image == 300
    )
    assert lvis.data.batch_size == 2 and lvis.targets.kind == "similarity"
    assert lvis.student is not None and lvis.student.pseudo_labels == "calibrated"
    assert lvis.student.support == "nonzero" and not lvis.student.unsup_mask_loss


def test_the_student_defaults_are_the_measured_recipe_not_the_literal_readings():
    """A config without a ``student`` block gets what measured best (D51, D59, D121); the literal
    readings stay selectable."""
    from tailteacher.config import StudentConfig
    from tailteacher.pipeline.student import pseudo_label_config

    student = StudentConfig()
    assert student.support == "nonzero" and student.threshold_on == "teacher"
    assert not student.unsup_box_loss and not student.unsup_mask_loss
    assert pseudo_label_config(student).threshold == 0.5
    literal = StudentConfig(support="all", unsup_box_loss=True, unsup_mask_loss=True, box_threshold=0.3)
    assert pseudo_label_config(literal).support == "all" and pseudo_label_config(literal).threshold == 0.3


def test_saved_config_reads_back_equal_with_a_stable_hash(tmp_path):
    cfg = load_config(_write(tmp_path, MINIMAL), ["train.lr=1e-4"])
    path = save_config(cfg, tmp_path / "run")
    again = load_config(path)
    assert again == cfg and config_hash(again) == config_hash(cfg)
    assert path.read_text().startswith(
        f"# Resolved config (defaults filled in). config hash: {config_hash(cfg)}"
    )
    assert len(config_hash(cfg)) == 64 and config_hash(cfg) == config_hash(cfg.model_copy())


def test_hash_ignores_key_order_and_the_run_section_but_not_values(tmp_path):
    a = load_config(_write(tmp_path, MINIMAL))
    reordered = {k: MINIMAL[k] for k in reversed(list(MINIMAL))}
    b = load_config(_write(tmp_path, reordered, "b.yaml"), ["run.run_dir=elsewhere", "run.resume=true"])
    c = load_config(_write(tmp_path, MINIMAL, "c2.yaml"), ["targets.gamma=1.0"])
    assert config_hash(a) == config_hash(b) != config_hash(c)
    assert "resume: true" in dump_config(b)


def test_config_is_frozen():
    cfg = Config.model_validate(MINIMAL)
    with pytest.raises(ValueError, match="frozen"):
        cfg.train = None


def test_docs_hold_the_generated_config_reference():
    docs = (ROOT / "docs" / "engine.md").read_text()
    assert config_reference() in docs, (
        "regenerate: python -c 'from tailteacher.config_io import config_reference as r; print(r())'"
    )
