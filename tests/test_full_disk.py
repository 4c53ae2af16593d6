"""`tailteacher run` on a disk that fills up part-way: it stops with exit 2 and a message naming the
file it could not write, every output it had written stays valid (each json parses, each weight
file loads, each finished stage's weights equal an unhindered run's, no temp file is left), and
once space is freed the same command finishes with the unhindered run's numbers.

The disk is a real one: a tmpfs mounted at a size below what the run writes. Mounting needs root
(CAP_SYS_ADMIN), which CI's machine has; elsewhere the test is skipped and says why.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tailteacher.data.synth import generate
from tiny_run import tiny_run_command


def _mount(point: Path, size_bytes: int) -> None:
    point.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(point)], check=True)


def _can_mount(tmp: Path) -> str | None:
    """None when a tmpfs can be mounted here, else why not."""
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "no mount/umount command"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "not root: mounting a small tmpfs (the full disk) needs CAP_SYS_ADMIN"
    probe = tmp / "probe"
    try:
        _mount(probe, 1 << 20)
    except (subprocess.CalledProcessError, OSError) as err:
        return f"mount -t tmpfs failed here: {err}"
    subprocess.run(["umount", str(probe)], check=True)
    return None


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _run(data: Path, run: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(tiny_run_command(data, run), env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.faults  # ~2 min on 2 cores: two small pipelines and a resume
def test_a_full_disk_stops_the_run_cleanly_and_it_resumes_after_space_is_freed(tmp_path):
    why_not = _can_mount(tmp_path)
    if why_not is not None:
        pytest.skip(f"full-disk test not run: {why_not}")
    data = tmp_path / "tiny"
    generate("tiny", 0, data)
    ref = tmp_path / "unhindered"
    reference = _run(data, ref)
    assert reference.returncode == 0, reference.stderr[-3000:]
    total = _size(ref)

    disk = tmp_path / "disk"
    _mount(disk, total // 2)  # fills up about half-way through the run
    try:
        run = disk / "run"
        full = _run(data, run)
        assert full.returncode == 2, f"exit {full.returncode}\n{full.stderr[-3000:]}"
        assert "Traceback" not in full.stderr, full.stderr[-3000:]
        assert "No space left on device" in full.stderr and str(run) in full.stderr, full.stderr

        assert not list(run.rglob("*.tmp")), "a failed write left its temp file"
        for path in run.rglob("*.json"):
            json.loads(path.read_text())  # every json in place is whole
        for path in run.rglob("*.safetensors"):
            load_file(path)
        records = {p.parent.name: json.loads(p.read_text()) for p in run.rglob("stage.json")}
        assert "teacher" in records, "the disk should fill after the teacher (resize the tmpfs)"
        assert "student" not in records, "the disk should fill before the student (resize the tmpfs)"
        for folder, record in records.items():
            if "checkpoint" in record["result"]:  # a finished training stage: its weights are whole
                got = load_file(run / folder / "model_final.safetensors")
                want = load_file(ref / folder / "model_final.safetensors")
                assert all((got[k] == want[k]).all() for k in want), folder

        subprocess.run(["mount", "-o", f"remount,size={4 * total}", str(disk)], check=True)
        resumed = _run(data, run)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert "[teacher] done already" in resumed.stdout
        rows = [json.loads((d / "report.json").read_text())["rows"] for d in (run, ref)]
        assert rows[0] == rows[1]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
