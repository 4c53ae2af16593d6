"""`tailteacher run` killed with SIGKILL at 19 points across its stages — inside checkpoint and
report writes, mid-training, mid-evaluation, between a stage's outputs and its record — and run
again after each kill: the run ends with the numbers and weights of an uninterrupted run.

The kills are chained in one run folder: each process is killed at the next point (``failpoints``,
``TAILTEACHER_KILL_AT``), the next process resumes from what the last one left, and the last
process finishes. Every point must be reached (a process that exits normally instead fails the
test), so a point the pipeline no longer passes is noticed.
"""

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tailteacher.data.synth import generate
from tailteacher.failpoints import ENV
from tiny_run import tiny_run_command

# (pattern, stage, where the process is when it dies). A pattern matches the first such point the
# process reaches; finished stages are skipped by the rerun, so "step/2" is the stage at hand's.
POINTS = (
    ("write/heldout.json", "split", "train.json in place, heldout.json's temp file written"),
    ("stage_done/split", "split", "both files written, the stage record not"),
    ("write/prototypes.safetensors", "prototypes", "the file's temp written, not in place"),
    ("step/1", "teacher", "mid-training, before its first checkpoint"),
    ("write/step_*.pt", "teacher", "inside the write of its step-2 checkpoint"),
    ("step/3", "teacher", "one step after the checkpoint it will resume from"),
    ("write/model_final.safetensors", "teacher", "trained, final weights not in place"),
    ("predict/0", "teacher", "mid-evaluation on the validation images"),
    ("write/val_metrics.json", "teacher", "results written, metrics not"),
    ("stage_done/teacher", "teacher", "everything written, the stage record not"),
    # The teacher's record was not written, so the rerun evaluates it again (its first predict/0)
    # before calibrating: the second predict/0 is the calibration's.
    ("predict/0#2", "calibrate", "mid-prediction on the held-out images"),
    ("write/delta.safetensors", "calibrate", "Δ not in place"),
    ("step/2", "control", "mid-training"),
    ("stage_done/control", "control", "done, the record not written"),
    ("write/pseudo_labels.json", "pseudo_labels", "its table not in place"),
    ("write/step_*.pt", "student", "inside a checkpoint write"),
    ("step/5", "student", "mid-training, after a checkpoint"),
    ("predict/0", "student", "mid-evaluation"),
    ("write/report.html", "report", "report.md and report.json written, the page not"),
)

TEACHER_STEPS, STUDENT_STEPS = 4, 6


def _cmd(data: Path, run: Path) -> list[str]:
    return tiny_run_command(
        data,
        run,
        **{
            "targets.kind": "similarity",  # the prototypes stage too
            "targets.crop_size": 32,
            "train.max_steps": TEACHER_STEPS,
            "student.max_steps": STUDENT_STEPS,
        },
    )


def _run(data: Path, run: Path, kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
    # One thread everywhere: another thread count changes float reductions, which is not the resume.
    env = {k: v for k, v in os.environ.items() if k != ENV} | {"OMP_NUM_THREADS": "1"}
    if kill_at is not None:
        env[ENV] = kill_at
    return subprocess.run(_cmd(data, run), env=env, capture_output=True, text=True, timeout=600)


def _stage_at_kill(stdout: str) -> str:
    """The stage a killed process was in: the last one it started, or "report" after the last."""
    started = re.findall(r"^\[(\w+)\] (?:running|resuming)", stdout, flags=re.M)
    if started and f"[{started[-1]}] finished" in stdout and started[-1] == "student":
        return "report"
    return started[-1] if started else ""


@pytest.mark.faults  # ~3 min on 2 cores: one pipeline, 20 process starts, and the uninterrupted one
def test_run_killed_at_every_point_ends_as_the_uninterrupted_run(tmp_path):
    data = tmp_path / "tiny"
    generate("tiny", 0, data)
    ref, run = tmp_path / "uninterrupted", tmp_path / "killed"
    reference = _run(data, ref)
    assert reference.returncode == 0, reference.stderr[-3000:]

    for pattern, stage, where in POINTS:
        killed = _run(data, run, pattern)
        assert killed.returncode == -signal.SIGKILL, (
            f"not killed at {pattern} ({stage}: {where}): exit {killed.returncode}\n"
            f"{killed.stdout[-2000:]}\n{killed.stderr[-2000:]}"
        )
        assert _stage_at_kill(killed.stdout) == stage, (pattern, where, killed.stdout[-2000:])
    resumed = _run(data, run)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "done already" in resumed.stdout

    for stage in ("teacher", "control", "student"):
        got = load_file(run / stage / "model_final.safetensors")
        want = load_file(ref / stage / "model_final.safetensors")
        assert got.keys() == want.keys()
        for key, value in want.items():
            assert (got[key] == value).all(), f"{stage}: {key}"
    for name in ("prototypes/prototypes.safetensors", "calibration/delta.safetensors"):
        got, want = load_file(run / name), load_file(ref / name)
        assert all((got[k] == want[k]).all() for k in want), name
    rows = [json.loads((d / "report.json").read_text())["rows"] for d in (run, ref)]
    assert rows[0] == rows[1]
    assert (run / "report.html").is_file()
    assert not list(run.rglob("*.tmp")), "a killed write's temp file was left behind"
    for name in ("split/train.json", "split/heldout.json", "pseudo_labels/pseudo_labels.json"):
        assert (run / name).read_bytes() == (ref / name).read_bytes(), name
