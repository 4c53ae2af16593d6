"""A training process killed with SIGKILL mid-epoch, then resumed, ends exactly where an
uninterrupted run ends: weights, optimizer, EMA, evaluation history and the logged metrics."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from tailteacher.engine import Checkpointer, load_checkpoint, read_metrics

HELPER = Path(__file__).parent / "helpers" / "engine_train.py"
MAX_STEPS = 25  # toy_config; 40 samples / batch 4 = 10 batches per epoch; a checkpoint every 3 steps
TIMING = ("data_time", "time_per_step")


def _start(run_dir: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(HELPER), str(run_dir), *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _checkpointed_step(run_dir: Path) -> int:
    pointer = run_dir / "checkpoints" / "last_checkpoint.json"
    try:
        return int(json.loads(pointer.read_text())["step"])
    except (OSError, ValueError, KeyError):
        return 0


def _logged_step(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    records = read_metrics(path) if path.exists() else []
    return max((r["step"] for r in records), default=0)


def _without_timing(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_kill_9_mid_epoch_then_resume_equals_uninterrupted_run(tmp_path):
    ref_dir, run_dir = tmp_path / "uninterrupted", tmp_path / "killed"
    reference = _start(ref_dir)
    victim = _start(run_dir, "--sleep", "0.25")
    try:
        deadline = time.monotonic() + 120
        while True:
            saved = _checkpointed_step(run_dir)
            if saved >= 6 and _logged_step(run_dir) >= saved + 2:
                break
            assert victim.poll() is None, f"the run ended before it was killed: {victim.stderr.read()}"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        victim.kill()
        victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    final_name = Checkpointer.file_name(MAX_STEPS)
    assert not (run_dir / "checkpoints" / final_name).exists()
    latest = Checkpointer(run_dir / "checkpoints").latest()
    assert latest is not None
    at_kill = load_checkpoint(latest)
    assert 0 < at_kill["data"]["batch"] < 10, "the checkpoint resumed from is mid-epoch"
    assert _logged_step(run_dir) > at_kill["step"], "steps after the checkpoint are redone"

    resumed = _start(run_dir, "--resume")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err[-4000:]
    assert f"starting at step {at_kill['step']}" in out
    out, err = reference.communicate(timeout=120)
    assert reference.returncode == 0, err[-4000:]

    got = load_checkpoint(run_dir / "checkpoints" / final_name)
    want = load_checkpoint(ref_dir / "checkpoints" / final_name)
    assert got["step"] == want["step"] == MAX_STEPS
    assert got["data"] == want["data"]
    for key, value in want["model"].items():
        assert torch.equal(got["model"][key], value), key
    for key, value in want["hooks"]["EMAHook"]["ema"].items():
        assert torch.equal(got["hooks"]["EMAHook"]["ema"][key], value), key
    assert got["hooks"]["EvalHook"] == want["hooks"]["EvalHook"]
    for pid, state in want["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(got["optimizer"]["state"][pid][name], value), (pid, name)
    assert got["scheduler"] == want["scheduler"]
    # the log of the resumed run reads as the uninterrupted one (steps redone are not doubled)
    got_log, want_log = read_metrics(run_dir / "metrics.jsonl"), read_metrics(ref_dir / "metrics.jsonl")
    assert _without_timing(got_log) == _without_timing(want_log)
    # the same config hash (the run section, where the run lives and that it resumed, is not hashed)
    first_line = [(d / "config.yaml").read_text().splitlines()[0] for d in (run_dir, ref_dir)]
    assert first_line[0] == first_line[1] and "config hash" in first_line[0]
