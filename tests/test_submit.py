"""`tailteacher submit`: the pipeline as a submitit job (D88). The local executor is submitit's own
(a controller process that runs, signals and requeues the job as SLURM would), not a mock."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
from safetensors.torch import load_file

from tailteacher.cli import main
from tailteacher.config_io import load_config
from tailteacher.data.synth import generate
from tailteacher.errors import InputError
from tailteacher.launch.submit import PipelineJob, Resources, make_executor, submit
from tiny_run import tiny_run_sets

TEACHER_STEPS = 10


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    generate("tiny", 0, out)
    return out


def _sets(data: Path, run: Path) -> dict[str, object]:
    return tiny_run_sets(
        data,
        run,
        **{
            "data.unlabeled_json": "null",  # split, teacher, calibration: the stages a student builds on
            "train.max_steps": TEACHER_STEPS,
        },
    )


def _config(data: Path, run: Path):
    return load_config("demo", [f"{k}={v}" for k, v in _sets(data, run).items()])


def test_the_checkpoint_resubmits_the_same_call_and_the_job_pickles(tiny, tmp_path):
    job = PipelineJob(_config(tiny, tmp_path / "run"), until="teacher")
    again = job.checkpoint()
    assert again.function is job and again.args == () and again.kwargs == {}
    copy = cloudpickle.loads(cloudpickle.dumps(again))
    assert copy.function.config == job.config and copy.function.until == "teacher"
    with pytest.raises(InputError, match="--stage: expected one of split, mine, prototypes"):
        PipelineJob(job.config, until="students")


def test_resources_map_to_submitit_and_more_than_one_process_is_refused():
    r = Resources(nodes=1, gpus_per_node=1, partition="gpu", minutes=600, cpus_per_task=10)
    assert r.parameters("slurm") == {
        "name": "tailteacher",
        "timeout_min": 600,
        "nodes": 1,
        "tasks_per_node": 1,
        "gpus_per_node": 1,
        "cpus_per_task": 10,
        "slurm_partition": "gpu",
    }
    assert "slurm_partition" not in r.parameters("local")
    for bad in (Resources(nodes=2), Resources(gpus_per_node=8)):
        with pytest.raises(InputError, match="`run` is one process on one device"):
            bad.check()
    with pytest.raises(InputError, match="--time: expected a positive integer, got 0"):
        Resources(minutes=0).check()


@pytest.mark.skipif(shutil.which("srun") is not None, reason="this machine is a SLURM node")
def test_slurm_without_slurm_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="--executor slurm: "):
        make_executor("slurm", tmp_path, Resources())


def test_cli_refuses_several_gpus_before_submitting(tiny, tmp_path, capsys):
    args = ["submit", "demo", *(f"--set={k}={v}" for k, v in _sets(tiny, tmp_path / "run").items())]
    assert main([*args, "--gpus-per-node", "8", "--executor", "local"]) == 2
    assert "`run` is one process on one device" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_local_job_runs_the_split_as_the_direct_run_does(tiny, tmp_path, capsys):
    from tailteacher.pipeline.run import run_pipeline

    direct = tmp_path / "direct"

    run_pipeline(_config(tiny, direct), until="split", log=lambda _: None)
    job_run = tmp_path / "job"
    args = [f"--set={k}={v}" for k, v in _sets(tiny, job_run).items()]
    assert main(["submit", "demo", *args, "--stage", "split", "--executor", "local", "--wait"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("submitted job ") and "split: ran (" in out
    for name in ("train.json", "heldout.json"):
        assert (job_run / "split" / name).read_bytes() == (direct / "split" / name).read_bytes()
    assert not (job_run / "teacher").exists()


# One thread in every process: another thread count changes float reductions, which is not the launch.
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _teacher_step(run: Path) -> int:
    try:
        return int(json.loads((run / "teacher" / "checkpoints" / "last_checkpoint.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return 0


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


# 43 s on 2 shared cores (two tiny pipelines: split, a 10-step teacher, calibration); not marked
# slow so that `make test` covers the preemption path (issue 14).
def test_a_preempted_local_job_is_requeued_resumes_and_ends_as_the_direct_run(tiny, tmp_path, monkeypatch):
    env = _one_thread(monkeypatch)
    direct, job_run = tmp_path / "direct", tmp_path / "job"
    cmd = [sys.executable, "-m", "tailteacher", "run", "demo"]
    reference = subprocess.Popen(
        [*cmd, *(f"--set={k}={v}" for k, v in _sets(tiny, direct).items())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    job = submit(_config(tiny, job_run), Resources(gpus_per_node=0, minutes=20), executor="local")
    try:
        deadline = time.monotonic() + 300
        while not 2 <= _teacher_step(job_run) < TEACHER_STEPS:
            assert not job.done(), f"the job ended before it was preempted: {job.stdout()}"
            assert time.monotonic() < deadline, "no teacher checkpoint within 300 s"
            time.sleep(0.02)
        # SLURM's preemption signal (submitit's default, USR2) to the job's task, as srun would.
        (task,) = _children(int(job.job_id))
        os.kill(task, signal.SIGUSR2)
        result = job.result()
    finally:
        if not job.done():
            job.cancel()
        if reference.poll() is None and sys.exc_info()[0] is not None:
            reference.kill()
    log = job.stdout() or ""
    assert "this job is preempted" in log or "this job is timed-out" in log, log[-3000:]
    assert "Requeued job" in log and "[teacher] resuming the stopped stage" in log, log[-3000:]
    assert [s["name"] for s in result["stages"]] == ["split", "teacher", "calibrate"]

    _, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err[-3000:]
    for name in ("teacher/model_final.safetensors", "calibration/delta.safetensors"):
        got, want = load_file(job_run / name), load_file(direct / name)
        assert got.keys() == want.keys()
        for key, value in want.items():
            assert (got[key] == value).all(), (name, key)
    rows = [json.loads((d / "report.json").read_text())["rows"] for d in (job_run, direct)]
    assert rows[0] == rows[1] == result["rows"]
