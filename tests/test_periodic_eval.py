"""``train.eval_every``: the teacher evaluated on val during training, logged as ``val/…``."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from tailteacher.cli import main
from tailteacher.config_io import load_config
from tailteacher.data.synth import generate
from tailteacher.engine import LoaderSource, Trainer, build_trainer, read_metrics
from tailteacher.engine.hooks import EvalHook
from tailteacher.errors import InputError
from tailteacher.pipeline.data import load_train_data
from tailteacher.pipeline.detector import build_detector
from tailteacher.pipeline.periodic_eval import periodic_eval_fn, val_evaluator

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
import engine_toy

CONFIG = Path(__file__).parents[1] / "src" / "tailteacher" / "configs" / "demo.yaml"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    generate("tiny", 0, out)
    assert main(["split", "--train", str(out / "train.json"), "--out", str(out / "split")]) == 0
    # A val set of 6 images (of 40): each evaluation a few seconds, not ~25 s.
    val = json.loads((out / "val.json").read_text())
    keep = {im["id"] for im in sorted(val["images"], key=lambda im: im["id"])[:6]}
    val["images"] = [im for im in val["images"] if im["id"] in keep]
    val["annotations"] = [a for a in val["annotations"] if a["image_id"] in keep]
    (out / "val_small.json").write_text(json.dumps(val))
    return out


def overrides(data: Path, run: Path, *extra: str) -> list[str]:
    return [
        f"--set=data.train_json={data}/split/train.json",
        f"--set=data.val_json={data}/val_small.json",
        f"--set=data.image_root={data}/images",
        "--set=data.image_size=64",
        "--set=data.batch_size=4",
        "--set=data.workers=0",
        "--set=model.image_min_size=64",
        "--set=model.image_max_size=64",
        "--set=model.roi_batch_size_per_image=64",
        "--set=model.detections_per_image=50",
        "--set=targets.kind=onehot",
        "--set=train.warmup_steps=1",
        "--set=train.log_every=1",
        f"--set=run.run_dir={run}",
        *extra,
    ]


def test_eval_hook_logs_val_records_every_k_steps_and_restores_train_mode(tmp_path):
    config = engine_toy.toy_config(tmp_path / "run", max_steps=7, eval_every=3, ema_momentum=None)
    model = engine_toy.mlp(batchnorm=True)
    modes = []

    def eval_fn():
        modes.append(model.training)
        model.eval()  # left in eval mode: the hook gives it back in train mode
        return engine_toy.val_loss_fn(model)

    source = LoaderSource(engine_toy.regression_data(40), batch_size=4, seed=3)
    trainer = build_trainer(
        config.train,
        config.run,
        record=config,
        model=model,
        step_fn=engine_toy.mse_step,
        data=source,
        eval_fn=eval_fn,
        progress=False,
    )
    trainer.train()
    assert model.training and modes == [True, True, True]
    val = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "val/val_mse" in r]
    assert [r["step"] for r in val] == [3, 6, 7]  # every 3 steps and after the last
    assert all(math.isfinite(r["val/val_mse"]) for r in val)
    assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_val_evaluator_returns_lvis_metrics_and_restores_the_mode(tiny, tmp_path):
    args = overrides(tiny, tmp_path / "run", "--set=train.max_steps=1")
    config = load_config(CONFIG, [a.removeprefix("--set=") for a in args])
    assert periodic_eval_fn(config, torch.device("cpu"), torch.nn.Linear(1, 1)) is None  # eval_every null
    torch.manual_seed(0)
    model = build_detector(config, load_train_data(config))
    evaluate = val_evaluator(config, torch.device("cpu"))
    for mode in (True, False):
        model.train(mode)
        metrics = evaluate(model)
        assert model.training is mode
    assert {"AP", "AP50", "AP75", "APc", "APf", "bbox_AP", "seconds"} <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())


@pytest.mark.slow  # ~30 s on 2 idle cores (4 training steps and 3 evaluations), ~55 s on busy ones
def test_eval_every_logs_val_metrics_and_gives_the_model_back_in_train_mode(tiny, tmp_path, monkeypatch):
    modes_at_step: list[bool] = []  # the model's mode when each step begins (before run_step sets it)
    modes_after_eval: list[bool] = []
    run_step, evaluate = Trainer.run_step, EvalHook.evaluate

    def recording_run_step(self):
        modes_at_step.append(self.model.training)
        return run_step(self)

    def recording_evaluate(self, trainer):
        results = evaluate(self, trainer)
        modes_after_eval.append(trainer.model.training)
        return results

    monkeypatch.setattr(Trainer, "run_step", recording_run_step)
    monkeypatch.setattr(EvalHook, "evaluate", recording_evaluate)

    run = tmp_path / "teacher"
    args = overrides(tiny, run, "--set=train.max_steps=4", "--set=train.eval_every=2")
    assert main(["train-teacher", str(CONFIG), *args]) == 0

    records = read_metrics(run / "metrics.jsonl")
    val = [r for r in records if any(k.startswith("val/") for k in r)]
    assert [r["step"] for r in val] == [2, 4]  # every 2 steps; the last (4) evaluated once
    for r in val:
        assert set(r) >= {"step", "val/AP", "val/AP50", "val/AP75", "val/APc", "val/APf", "val/bbox_AP"}
        assert all(math.isfinite(v) for k, v in r.items() if k.startswith("val/"))
        assert 0 <= r["val/AP"] <= 1 and r["val/seconds"] > 0
    # the training records are still there, one per step (log_every=1)
    assert [r["step"] for r in records if "total_loss" in r] == [1, 2, 3, 4]
    assert modes_after_eval == [True, True]
    assert modes_at_step == [True] * 4
    assert any((run / "tensorboard").iterdir())


def test_eval_every_must_be_positive(tmp_path):
    for bad in ("0", "-3"):
        path = tmp_path / f"c{bad}.yaml"
        path.write_text(CONFIG.read_text().replace("eval_every: null", f"eval_every: {bad}"))
        with pytest.raises(InputError, match="eval_every"):
            load_config(path)
