"""Stage hashes cover what changes a stage's result and nothing else (D85, D86): no run-only
settings, only the jsons a stage reads, by their bytes, not their paths. Hand-made configs; no
training."""

import shutil

import pytest

from tailteacher.config import Config, StudentConfig
from tailteacher.config_io import config_reference, load_config
from tailteacher.engine.config_files import config_hash, result_dump
from tailteacher.errors import InputError
from tailteacher.pipeline.run import (
    control_config,
    prototypes_inputs,
    stage_config_hash,
    student_inputs,
    teacher_inputs,
    with_updates,
)

RUN_ONLY = {
    "train": {"device": "cuda", "log_every": 1, "checkpoint_every": 3, "keep_checkpoints": 9},
    "data": {"workers": 11},
    "run": {"run_dir": "elsewhere", "resume": True},
}
RESULT_KEYS = [
    ("data", {"batch_size": 4}),
    ("data", {"image_size": 32}),
    ("train", {"amp": True}),
    ("train", {"seed": 1}),
    ("train", {"deterministic": True}),
    ("train", {"eval_every": 5}),  # its learning curve is part of the stage's output (D85)
    ("train", {"lr": 1e-3}),
    ("model", {"fpn_channels": 32}),
]


@pytest.fixture
def config(tmp_path):
    for name in ("train", "val", "heldout", "unlabeled"):
        (tmp_path / f"{name}.json").write_text(f'{{"{name}": 1}}')
    return Config.model_validate(
        {
            "data": {
                "train_json": str(tmp_path / "train.json"),
                "val_json": str(tmp_path / "val.json"),
                "heldout_json": str(tmp_path / "heldout.json"),
                "unlabeled_json": str(tmp_path / "unlabeled.json"),
                "image_root": str(tmp_path),
            },
            "train": {"max_steps": 2},
            "run": {"run_dir": str(tmp_path / "run")},
            "student": {"teacher_checkpoint": "t.safetensors", "unsup_weight": 1.0},
        }
    )


def test_run_only_keys_leave_every_hash_as_it_was(config):
    moved = with_updates(config, **RUN_ONLY)
    assert config_hash(moved) == config_hash(config)
    assert teacher_inputs(moved) == teacher_inputs(config)
    assert student_inputs(moved, ["t"]) == student_inputs(config, ["t"])
    assert prototypes_inputs(moved, None, "") == prototypes_inputs(config, None, "")
    assert "device" not in result_dump(config)["train"] and "workers" not in result_dump(config)["data"]


@pytest.mark.parametrize(("section", "values"), RESULT_KEYS)
def test_keys_that_change_a_result_change_the_hashes(config, section, values):
    changed = with_updates(config, **{section: values})
    assert config_hash(changed) != config_hash(config)
    assert teacher_inputs(changed) != teacher_inputs(config)
    assert student_inputs(changed, ["t"]) != student_inputs(config, ["t"])


def test_the_teacher_and_the_control_do_not_read_the_pool_the_student_does(config, tmp_path):
    (tmp_path / "pool2.json").write_text('{"another": "pool"}')
    pool = with_updates(config, data={"unlabeled_json": str(tmp_path / "pool2.json")})
    assert teacher_inputs(pool) == teacher_inputs(config)
    assert prototypes_inputs(pool, None, "") == prototypes_inputs(config, None, "")
    control = control_config(config.student or StudentConfig())
    assert control.unsup_weight == 0.0
    as_control = with_updates(config, student=control.model_dump(mode="json"))
    as_control_pool = with_updates(pool, student=control.model_dump(mode="json"))
    assert student_inputs(as_control_pool, ["t"]) == student_inputs(as_control, ["t"])
    assert set(student_inputs(as_control, ["t"])["data"]) == {"train", "val"}
    assert student_inputs(pool, ["t"]) != student_inputs(config, ["t"])
    assert set(student_inputs(config, ["t"])["data"]) == {"train", "val", "unlabeled"}
    # Only the bytes of the jsons a stage reads: the teacher's changes with the training json's.
    before = teacher_inputs(config)
    (tmp_path / "train.json").write_text('{"train": 22}')
    assert teacher_inputs(config)["data"]["train"] != before["data"]["train"]


def test_data_moved_to_another_folder_keeps_the_hashes(config, tmp_path):
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("train", "val", "heldout", "unlabeled"):
        shutil.copy(tmp_path / f"{name}.json", moved / f"{name}.json")
    there = with_updates(
        config,
        data={f"{n}_json": str(moved / f"{n}.json") for n in ("train", "val", "heldout", "unlabeled")}
        | {"image_root": str(moved)},
        student={"teacher_checkpoint": str(moved / "t.safetensors")},  # covered by the teacher's hash
    )
    assert teacher_inputs(there) == teacher_inputs(config)
    assert student_inputs(there, ["t"]) == student_inputs(config, ["t"])


def test_prototypes_enter_by_their_bytes_and_a_missing_file_is_an_input_error(config, tmp_path):
    (tmp_path / "a.safetensors").write_bytes(b"same")
    (tmp_path / "b.safetensors").write_bytes(b"same")
    a = with_updates(config, targets={"prototypes": str(tmp_path / "a.safetensors")})
    b = with_updates(config, targets={"prototypes": str(tmp_path / "b.safetensors")})
    assert stage_config_hash(a) == stage_config_hash(b) != stage_config_hash(config)
    missing = with_updates(config, targets={"prototypes": str(tmp_path / "gone.safetensors")})
    with pytest.raises(InputError, match=r"targets\.prototypes: no such file"):
        teacher_inputs(missing)
    gone = with_updates(config, data={"val_json": str(tmp_path / "gone.json")})
    with pytest.raises(InputError, match=r"data\.val_json: no such file"):
        teacher_inputs(gone)


def test_prototypes_hash_their_embedding_settings(config):
    crop = prototypes_inputs(config, None, "")
    assert prototypes_inputs(with_updates(config, targets={"crop_size": 112}), None, "") != crop
    assert prototypes_inputs(with_updates(config, targets={"instance_embedding": "roi"}), None, "") != crop
    assert prototypes_inputs(with_updates(config, targets={"gamma": 0.0}), None, "") == crop


def test_the_reference_marks_the_run_only_keys():
    marked = [line.split("|")[1].strip() for line in config_reference().splitlines() if "run-only" in line]
    assert marked == [
        "`workers`",
        "`device`",
        "`checkpoint_every`",
        "`keep_checkpoints`",
        "`log_every`",
        "`run_dir`",
        "`resume`",
    ]


# The shipped presets' control hashes as every finished control folder holds them (pinned at
# D121, which moved the student defaults without retraining a control).
SHIPPED_CONTROL_HASHES = {
    "demo": "533a196db63cb5cc2b2337b89d245214675d93ff77780615aea18223a233c332",
    "scarce": "6b66b61b4e49bc4df74599c7e123ca8eeeb76b9da77b64ec4245b9523300e67b",
    # bench is scarce's recipe on other data since D127: the same settings, so the same hash (the
    # data's bytes are hashed beside it).
    "bench": "6b66b61b4e49bc4df74599c7e123ca8eeeb76b9da77b64ec4245b9523300e67b",
}


@pytest.mark.parametrize("name", sorted(SHIPPED_CONTROL_HASHES))
def test_a_shipped_presets_control_keeps_its_hash(name):
    """A change of the model's student defaults must not retrain (or refuse) a finished control;
    a change that does change the control's training must update this table on purpose."""
    cfg = load_config(name)
    control = control_config(cfg.student or StudentConfig())
    as_control = cfg.model_copy(update={"student": control})
    assert stage_config_hash(as_control) == SHIPPED_CONTROL_HASHES[name]


def test_a_null_threshold_hashes_the_tau_it_resolves_to(config):
    """D121 moved null's τ (soft/calibrated 0.3 → 0.5) without changing a config written with null."""
    soft = with_updates(config, student={"pseudo_labels": "soft", "box_threshold": None, "unsup_weight": 1.0})
    assert student_inputs(soft, ["t"])["box_threshold"] == 0.5
    explicit = with_updates(soft, student={"box_threshold": 0.5})
    assert "box_threshold" not in student_inputs(explicit, ["t"])
    control = with_updates(soft, student=control_config(soft.student).model_dump(mode="json"))
    assert "box_threshold" not in student_inputs(control, ["t"])  # no pseudo-label reaches a loss
