"""`ablate --rows` (D125): which stages a process runs, which it only reads, and the stage lock that
lets several processes share one seed. The stage functions are replaced by ones that train nothing;
the stage runner, its records and its lock are the real ones."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

import tailteacher.pipeline.ablation as ablation
from tailteacher.config import Config
from tailteacher.engine.distributed import DistInfo
from tailteacher.errors import InputError
from tailteacher.pipeline.ablation import AblationPlan, run_seed
from tailteacher.pipeline.stages import DONE, LOCK, STARTED, run_stage

RESULT = {
    "metrics": {"AP": 0.5},
    "val_ece": {"all": 0.1},
    "checkpoint": "ckpt",
    "prototypes": "p",
    "train_json": "subset.json",
}


def _config(tmp_path: Path, pretrained: bool = True) -> Config:
    model = (
        {"backbone": "efficientnet_lite0", "weights": "package:efficientnet_lite0"}
        if pretrained
        else {"backbone": "resnet18", "weights": None}
    )
    data = {"train_json": str(tmp_path / "t.json"), "val_json": str(tmp_path / "v.json"), "image_root": "."}
    return Config.model_validate(
        {"data": data, "model": model, "train": {"max_steps": 2}, "run": {"run_dir": str(tmp_path / "out")}}
    )


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the stages whose action ran (stage functions that train nothing)."""
    calls: list[str] = []

    def stage(name: str, folder: Path) -> Any:
        def action(resume: bool) -> dict[str, Any]:
            calls.append(name)
            return RESULT

        return run_stage(name, folder, {"stage": name}, action, log=lambda _: None)

    monkeypatch.setattr(
        ablation, "prototypes_stage", lambda c, folder, log, **kw: stage("prototypes", folder)
    )
    monkeypatch.setattr(ablation, "teacher_stage", lambda c, folder, log, name, after: stage(name, folder))
    monkeypatch.setattr(ablation, "calibrate_stage", lambda c, t, root, log: stage("calibrate", root / "cal"))
    monkeypatch.setattr(
        ablation, "student_stage", lambda c, s, t, cal, folder, log, name: stage(name, folder)
    )
    monkeypatch.setattr(ablation, "subset_stage", lambda c, f, folder, log: stage(f"subset {f:g}", folder))
    return calls


def test_selected_adds_what_the_rows_need() -> None:
    plan = AblationPlan(seeds=[0], rows=frozenset({"student_soft"}))
    assert plan.selected("full", pretrained=True) == {"student_soft", "sim_g15", "calibration"}
    assert plan.selected("full", pretrained=False) == {"student_soft", "sim_g15", "calibration", "onehot"}
    assert plan.selected("fractions", pretrained=True) == set()
    teachers = AblationPlan(seeds=[0], rows=frozenset({"sim_g15", "uniform"}))
    assert teachers.selected("fractions", pretrained=True) == {"sim_g15"}
    assert teachers.selected("fractions", pretrained=False) == {"sim_g15", "onehot"}
    assert AblationPlan(seeds=[0]).selected("full", pretrained=True) is None


@pytest.mark.parametrize("rows", [{"student_sof"}, set()])
def test_unknown_or_no_rows_are_refused_with_the_known_ones(rows: set[str]) -> None:
    with pytest.raises(InputError, match=r"--rows: unknown row.*student_labeled"):
        AblationPlan(seeds=[0], rows=frozenset(rows))


def test_two_processes_split_a_seeds_rows_and_each_reads_the_others(tmp_path: Path, ran: list[str]) -> None:
    config = _config(tmp_path)
    first = AblationPlan(seeds=[0], fractions=(0.5,), rows=frozenset({"student_soft"}))
    rows = run_seed(config, first, 0, tmp_path / "out", lambda _: None)
    assert ran == ["prototypes", "teacher sim_g15", "calibrate", "student soft"]
    assert set(rows) == {"sim_g15@1", "student_soft@1"}

    ran.clear()
    second = AblationPlan(seeds=[0], fractions=(0.5,), rows=frozenset({"onehot", CONTROL}))
    rows = run_seed(config, second, 0, tmp_path / "out", lambda _: None)
    # The one-hot teacher at full labels and at the fraction, and the control; the student teacher
    # and its calibration are the first process's (done, read).
    assert ran == ["teacher onehot", "student labeled", "subset 0.5", "teacher onehot"]
    assert set(rows) == {"onehot@1", "sim_g15@1", "student_soft@1", "student_labeled@1", "onehot@0.5"}


def test_without_rows_every_stage_runs(tmp_path: Path, ran: list[str]) -> None:
    run_seed(_config(tmp_path), AblationPlan(seeds=[0], fractions=()), 0, tmp_path / "out", lambda _: None)
    assert len(ran) == 1 + 5 + 1 + 5  # prototypes, five teachers, calibration, five students


CONTROL = "student_labeled"

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tailteacher.pipeline.stages import run_stage

    def action(resume):
        time.sleep(float(sys.argv[2]))
        return {"by": "holder"}

    run_stage("s", Path(sys.argv[1]), {"a": 1}, action, log=lambda _: None)
    """
)


def test_a_second_process_waits_for_a_running_stage_and_then_finds_it_done(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), "2"])
    try:
        deadline = time.monotonic() + 60
        while not (folder / STARTED).is_file():  # written once the holder has the lock
            assert holder.poll() is None and time.monotonic() < deadline, "the holder did not start"
            time.sleep(0.05)
        lines: list[str] = []
        outcome = run_stage("s", folder, {"a": 1}, lambda r: {"by": "waiter"}, log=lines.append)
    finally:
        holder.wait(timeout=60)
    assert holder.returncode == 0
    assert outcome.skipped and outcome.result == {"by": "holder"}
    assert any("another process is running this stage" in line for line in lines), lines
    assert (folder / DONE).is_file() and not (folder / STARTED).exists()
    with FileLock(folder / LOCK).acquire(timeout=0):  # the waiter let go of it
        pass


def test_under_torchrun_a_locked_stage_is_refused_not_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tailteacher.pipeline.stages as stages

    folder = tmp_path / "s"
    folder.mkdir()
    monkeypatch.setattr(stages, "current_dist_info", lambda: DistInfo(rank=0, world_size=2, local_rank=0))
    with FileLock(folder / LOCK), pytest.raises(InputError, match="being run by another process"):
        stages._lock_stage("s", folder, lambda _: None)


def test_a_finished_or_refused_stage_writes_no_lock(tmp_path: Path) -> None:
    run_stage("s", tmp_path / "s", {"a": 1}, lambda r: {}, log=lambda _: None)
    (tmp_path / "s" / LOCK).unlink()
    run_stage("s", tmp_path / "s", {"a": 1}, lambda r: {}, log=lambda _: None)  # done: read only
    with pytest.raises(InputError, match="other inputs"):
        run_stage("s", tmp_path / "s", {"a": 2}, lambda r: {}, log=lambda _: None)
    assert not (tmp_path / "s" / LOCK).exists()


def test_the_ablation_names_the_cpu_kernels_its_numbers_came_from() -> None:
    import torch

    from tailteacher.pipeline.ablation import _machine

    # Trained numbers repeat on the same kernels (AVX2, AVX512, …) and thread count, not across them.
    assert f"({torch.backends.cpu.get_cpu_capability()})" in _machine("cpu")
    assert _machine("cpu").endswith("CPU only")
