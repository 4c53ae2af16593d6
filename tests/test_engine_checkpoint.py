"""Checkpoints: atomic writes, the pointer, pruning, in-process resume, logs on resume, the builder."""

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from tailteacher.config_io import load_config
from tailteacher.engine import (
    Checkpointer,
    HookBase,
    LoaderSource,
    MetricsWriter,
    WarmupCosine,
    build_trainer,
    config_hash,
    load_checkpoint,
    read_metrics,
    save_checkpoint,
)

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
import engine_toy


def _state(step):
    return {"format": 1, "step": step, "w": torch.full((3,), float(step))}


def test_a_crash_while_writing_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    ckpt = Checkpointer(tmp_path, keep=5)
    ckpt.save(3, _state(3))

    def crash(*args):
        raise OSError("disk full")

    for broken in ("fsync", "replace"):  # mid-write, and after writing but before the rename
        with monkeypatch.context() as m:
            m.setattr(os, broken, crash)
            with pytest.raises(OSError, match="disk full"):
                ckpt.save(6, _state(6))
        assert ckpt.latest() == tmp_path / "step_00000003.pt"
        assert torch.equal(load_checkpoint(ckpt.latest())["w"], torch.full((3,), 3.0))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint.json", "step_00000003.pt"]


def test_a_kill_while_writing_leaves_a_temporary_file_that_is_ignored_then_removed(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(6, _state(6))
    (tmp_path / ".step_00000009.pt.x1y2.tmp").write_bytes(b"half a checkpoint")
    assert ckpt.latest() == tmp_path / "step_00000006.pt"
    assert [p.name for p in ckpt.saved()] == ["step_00000006.pt"]
    ckpt.remove_temporary_files()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint.json", "step_00000006.pt"]


def test_old_checkpoints_are_pruned_after_the_pointer_moves(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=2)
    assert ckpt.latest() is None
    for step in (1, 2, 3, 4):
        ckpt.save(step, _state(step))
    assert [p.name for p in ckpt.saved()] == ["step_00000003.pt", "step_00000004.pt"]
    assert json.loads((tmp_path / "last_checkpoint.json").read_text()) == {
        "file": "step_00000004.pt",
        "step": 4,
    }


def test_bad_checkpoints_are_refused(tmp_path):
    save_checkpoint(tmp_path / "other.pt", {"weights": torch.ones(1)})
    with pytest.raises(ValueError, match="not a tailteacher checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "last_checkpoint.json").write_text('{"file": "step_00000009.pt", "step": 9}')
    with pytest.raises(ValueError, match="does not exist"):
        Checkpointer(tmp_path).latest()


class _Crash(HookBase):
    def __init__(self, at):
        self.at = at

    def after_step(self, trainer, metrics):
        if trainer.step == self.at:
            raise KeyboardInterrupt


def test_a_run_stopped_mid_epoch_resumes_to_the_same_weights(tmp_path):
    whole, rec_whole = engine_toy.sgd_trainer(batch_size=8, steps=12, checkpoint_dir=tmp_path / "a")
    whole.train()
    stopped, _ = engine_toy.sgd_trainer(batch_size=8, steps=12, checkpoint_dir=tmp_path / "b")
    stopped.hooks.insert(0, _Crash(at=5))
    with pytest.raises(KeyboardInterrupt):
        stopped.train()
    assert Checkpointer(tmp_path / "b").latest().name == "step_00000003.pt"  # no final save on a crash
    resumed, rec = engine_toy.sgd_trainer(batch_size=8, steps=12, checkpoint_dir=tmp_path / "b")
    assert resumed.resume(Checkpointer(tmp_path / "b")) is not None
    assert (resumed.step, resumed.epoch, resumed.batch_in_epoch) == (3, 0, 3)
    resumed.train()
    assert [m["loss_mse"] for m in rec.metrics] == [m["loss_mse"] for m in rec_whole.metrics[3:]]
    for key, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value)


def test_metrics_of_steps_after_the_checkpoint_are_dropped_on_resume(tmp_path):
    writer = MetricsWriter(tmp_path, tensorboard=False)
    writer.open(0)
    for step in range(1, 6):
        writer.write(step, {"loss": 1.0 / step})
    writer.close()
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 6, "lo')  # a line cut short by a kill
    resumed = MetricsWriter(tmp_path, tensorboard=False)
    resumed.open(3)
    resumed.write(4, {"loss": 0.0})
    resumed.close()
    resumed.open(0)  # a second open (after close) only appends
    resumed.close()
    assert [(r["step"], r["loss"]) for r in read_metrics(tmp_path / "metrics.jsonl")] == [
        (1, 1.0),
        (2, 0.5),
        (3, 1.0 / 3),
        (4, 0.0),
    ]
    MetricsWriter(tmp_path / "rank1", enabled=False).write(1, {"loss": 1.0})
    assert not (tmp_path / "rank1").exists()


def test_build_trainer_from_config_saves_config_logs_and_resumes(tmp_path, capsys):
    config = engine_toy.toy_config(tmp_path / "run", max_steps=6, eval_every=None)

    def make(cfg, progress):
        model = engine_toy.mlp(batchnorm=True)
        source = LoaderSource(engine_toy.regression_data(40), batch_size=4, seed=3)
        return build_trainer(
            cfg.train,
            cfg.run,
            record=cfg,
            model=model,
            step_fn=engine_toy.mse_step,
            data=source,
            eval_fn=lambda: engine_toy.val_loss_fn(model),
            progress=progress,
        )

    trainer = make(config, progress=True)
    assert [h.name for h in trainer.hooks] == ["EMAHook", "LoggingHook", "EvalHook", "CheckpointHook"]
    trainer.train()
    assert "train" in capsys.readouterr().err  # tqdm's bar, on rank 0
    run = tmp_path / "run"
    assert load_config(run / "config.yaml") == config
    assert config_hash(config) in (run / "config.yaml").read_text().splitlines()[0]
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6, 6]
    assert any((run / "tensorboard").iterdir())
    final = load_checkpoint(run / "checkpoints" / "step_00000006.pt")
    assert final["meta"] == {"config_hash": config_hash(config)}
    assert [h["step"] for h in final["hooks"]["EvalHook"]["history"]] == [6]

    longer = engine_toy.toy_config(tmp_path / "run", max_steps=8, eval_every=None)
    longer = longer.model_copy(update={"run": longer.run.model_copy(update={"resume": True})})
    with pytest.warns(UserWarning, match="written with another config"):
        resumed = make(longer, progress=False)
    assert resumed.step == 6
    resumed.train()
    assert resumed.step == 8
    # the schedule is the config's (8 steps), not the checkpoint's (6, which would end at 0)
    lrs = {r["step"]: r["lr"] for r in read_metrics(run / "metrics.jsonl") if "lr" in r}
    factor = WarmupCosine(warmup_steps=4, max_steps=8)
    assert lrs[7] == pytest.approx(0.01 * factor(6), rel=1e-12) and lrs[7] > 0
    assert lrs[6] == pytest.approx(0.01 * WarmupCosine(warmup_steps=4, max_steps=6)(5), rel=1e-12)
