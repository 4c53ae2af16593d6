"""Run a helper script under real torchrun: 2 gloo processes on CPU (what the DDP tests share)."""

import os
import subprocess
import sys
from pathlib import Path


def torchrun(
    script: Path | str,
    *args: str,
    nproc: int = 2,
    timeout: int = 240,
    module: bool = False,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (a module's name with ``module``) under ``torch.distributed.run --standalone``;
    with ``check``, fail with its stderr if it fails. Returns the finished process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    target = ["-m", str(script)] if module else [str(script)]
    proc = subprocess.run([*cmd, *target, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0 or not check, proc.stderr[-4000:]
    return proc
