"""How often two gloo ranks that exit with code 2 are reported as aborted, with and without leaving
the process group first (what ``tailteacher.cli.leave_process_group`` does since D122).

    python benchmarks/gloo_teardown.py [--runs 40]

Each run is ``torchrun --nproc-per-node 2`` of a rank script that does what a refused stage does
(rank 0's ``InputError`` broadcast to every rank, one more collective) and exits with 2; the arm
``leave`` calls ``engine.distributed.shutdown()`` first, the arm ``finalise`` leaves the group to the
interpreter's exit; the two arms alternate launch by launch. Prints, per arm, the runs, how many
torchrun reported a SIGABRT, and how many did not report exit code 2. The abort depends on timing:
run it with the cores busy.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RANK_SCRIPT = """
import os, sys
from tailteacher.engine.distributed import all_gather_objects, broadcast_object, init_distributed, shutdown
from tailteacher.errors import InputError

info = init_distributed()
broadcast_object(InputError("refused") if info.is_main else None)
all_gather_objects(info.rank)
if os.environ["TEARDOWN_ARM"] == "leave":
    shutdown()
sys.exit(2)
"""


def one_run(script: Path, arm: str, port: int) -> tuple[bool, bool]:
    """(SIGABRT reported, exit code 2 reported) for one torchrun of ``script``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port)]
    env = {**os.environ, "TEARDOWN_ARM": arm}
    out = subprocess.run([*cmd, str(script)], capture_output=True, text=True, env=env, check=False)
    text = out.stdout + out.stderr
    return ("SIGABRT" in text or "Signal 6" in text), ("exitcode  : 2" in text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=40, help="torchrun launches per arm (default 40)")
    parser.add_argument("--port", type=int, default=29650, help="first master port (default 29650)")
    args = parser.parse_args()
    arms = ("finalise", "leave")
    counts = {arm: [0, 0] for arm in arms}  # [SIGABRT, not exit 2]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "rank.py"
        script.write_text(RANK_SCRIPT)
        for i in range(args.runs):  # the arms alternate, so both see the same background load
            for k, arm in enumerate(arms):
                aborted, two = one_run(script, arm, args.port + (2 * i + k) % 100)
                counts[arm][0] += aborted
                counts[arm][1] += not two
    print("| arm | runs | SIGABRT | not exit 2 |\n|---|---:|---:|---:|")
    for arm in arms:
        print(f"| {arm} | {args.runs} | {counts[arm][0]} | {counts[arm][1]} |")


if __name__ == "__main__":
    main()
