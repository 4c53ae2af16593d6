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
from tailteacher.engine.distributed import DistInfo, dist_info_from_env
from tailteacher.errors import InputError
from tailteacher.launch.submit import (
    PipelineJob,
    Resources,
    job_environment,
    make_executor,
    submit,
    torch_environment,
)
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
    assert Resources(nodes=2, gpus_per_node=8).parameters("slurm")["tasks_per_node"] == 8  # a task per GPU
    assert Resources(gpus_per_node=0, tasks_per_node=2).parameters("local")["tasks_per_node"] == 2
    with pytest.raises(InputError, match="a job with GPUs runs one process per GPU"):
        Resources(gpus_per_node=8, tasks_per_node=2).check()
    with pytest.raises(InputError, match="--time: expected a positive integer, got 0"):
        Resources(minutes=0).check()
    with pytest.raises(InputError, match="--tasks-per-node: expected a positive integer, got 0"):
        Resources(gpus_per_node=0, tasks_per_node=0).check()


def test_a_task_gets_torchruns_variables():
    env = torch_environment(
        rank=9, world_size=16, local_rank=1, local_world_size=8, master_addr="n01", master_port=29123
    )
    assert env == {
        "RANK": "9",
        "WORLD_SIZE": "16",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "8",
        "MASTER_ADDR": "n01",
        "MASTER_PORT": "29123",
    }
    assert dist_info_from_env(env) == DistInfo(9, 16, 1)
    for bad in ((16, 16, 0, 8), (0, 2, 2, 2), (0, 2, 0, 3)):
        with pytest.raises(ValueError, match="expected 0 ≤ rank"):
            torch_environment(*bad, master_addr="n01", master_port=1)
    assert job_environment() == {}  # outside a submitit job: one process


@pytest.mark.skipif(shutil.which("srun") is not None, reason="this machine is a SLURM node")
def test_slurm_without_slurm_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="--executor slurm: "):
        make_executor("slurm", tmp_path, Resources())


def test_cli_refuses_what_the_executor_cannot_run_before_submitting(tiny, tmp_path, capsys):
    args = ["submit", "demo", *(f"--set={k}={v}" for k, v in _sets(tiny, tmp_path / "run").items())]
    assert main([*args, "--gpus-per-node", "8", "--tasks-per-node", "2", "--executor", "local"]) == 2
    assert "a job with GPUs runs one process per GPU" in capsys.readouterr().err
    assert main([*args, "--nodes", "2", "--executor", "local"]) == 2
    assert "--executor local: runs on this one machine, expected --nodes 1, got 2" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ~40 s on 2 shared cores: two tasks, each importing torch and running split and a 2-step teacher.
@pytest.mark.distributed
def test_a_local_job_of_two_tasks_runs_the_pipeline_under_torch_distributed(tiny, tmp_path, monkeypatch):
    _one_thread(monkeypatch)
    run = tmp_path / "job"
    config = load_config("demo", [f"{k}={v}" for k, v in _sets(tiny, run).items()] + ["train.max_steps=2"])
    job = submit(
        config, Resources(gpus_per_node=0, tasks_per_node=2, minutes=10), until="teacher", executor="local"
    )
    results = job.results()
    assert len(results) == 2 and results[0] == results[1], job.stderr()
    assert [(s["name"], s["skipped"]) for s in results[0]["stages"]] == [("split", False), ("teacher", False)]
    record = json.loads((run / "teacher" / "stage.json").read_text())
    assert record["processes"] == 2 and record["hash"] == results[0]["stages"][1]["hash"]
    metrics = [json.loads(line) for line in (run / "teacher" / "metrics.jsonl").read_text().splitlines()]
    steps = [m["step"] for m in metrics if "total_loss" in m]
    assert steps == sorted(set(steps)) and steps[-1] == 2  # one writer (rank 0): each step once


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
