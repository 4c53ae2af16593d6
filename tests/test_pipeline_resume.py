"""`tailteacher run` killed with SIGKILL inside the student stage, then run again with other
run-only settings (as on another machine: device auto → cpu, 0 → 1 data workers, another log and
checkpoint cadence; D85): the finished stages are skipped, the student resumes from its checkpoint,
and its final weights equal those of an uninterrupted run."""

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tailteacher.data.synth import generate
from tiny_run import tiny_run_command

STUDENT_STEPS = 8


#: What the resumed command changes: none of it is an input of any stage (D85).
ELSEWHERE = {
    "train.device": "cpu",
    "data.workers": 1,
    "train.log_every": 1,
    "train.checkpoint_every": 3,
    "train.keep_checkpoints": 4,
}


def _cmd(data: Path, run: Path, changes: Mapping[str, object] | None = None) -> list[str]:
    return tiny_run_command(data, run, **{"student.max_steps": STUDENT_STEPS, **(changes or {})})


# One thread everywhere: another thread count changes float reductions, which is not the resume.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _start(data: Path, run: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _cmd(data, run), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _student_checkpoint(run: Path) -> int:
    try:
        return int(json.loads((run / "student" / "checkpoints" / "last_checkpoint.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow  # ~1 min on 2 cores: two pipelines of a few steps each
def test_run_killed_in_the_student_resumes_to_the_uninterrupted_result(tmp_path):
    data = tmp_path / "tiny"
    generate("tiny", 0, data)
    ref, run = tmp_path / "uninterrupted", tmp_path / "killed"
    reference = _start(data, ref)
    victim = _start(data, run)
    try:
        deadline = time.monotonic() + 300
        while not 2 <= _student_checkpoint(run) < STUDENT_STEPS:
            assert victim.poll() is None, (
                f"the run ended before it was killed: {victim.stderr.read()[-3000:]}"
            )
            assert time.monotonic() < deadline, "no student checkpoint within 300 s"
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        victim.kill()
        victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    assert (run / "student" / "stage.started.json").is_file() and not (
        run / "student" / "stage.json"
    ).exists()

    resumed = subprocess.run(_cmd(data, run, ELSEWHERE), env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for stage in ("split", "teacher", "calibrate"):
        assert f"[{stage}] done already" in resumed.stdout
    assert "[student] resuming the stopped stage" in resumed.stdout
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err[-3000:]

    got = load_file(run / "student" / "model_final.safetensors")
    want = load_file(ref / "student" / "model_final.safetensors")
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert (got[key] == value).all(), key
    rows = [json.loads((d / "report.json").read_text())["rows"] for d in (run, ref)]
    assert rows[0] == rows[1]
