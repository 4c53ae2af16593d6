"""Run a helper script under real torchrun: 2 gloo processes on CPU (what the DDP tests share)."""

import os
import subprocess
import sys
from pathlib import Path


def torchrun(script: Path, *args: str, nproc: int = 2, timeout: int = 240) -> None:
    """Run ``script`` under ``torch.distributed.run --standalone``; fail with its stderr if it fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    proc = subprocess.run(
        [*cmd, str(script), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
