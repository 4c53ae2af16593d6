"""Kill points: named places where a fault test stops the process with SIGKILL.

A long run must survive ``kill -9`` (a preempted node, the OOM killer, a user's Ctrl-\\) at any
moment and, run again, end with the numbers an uninterrupted run gives (docs/reliability.md).
Killing from outside at a moment chosen by a timer tests only where the timer happens to land; a
kill point lets a test stop the process exactly inside a checkpoint write, between a stage's
outputs and its record, or half-way through an evaluation. The idea is the "failpoints" of etcd
and TiKV; this is the smallest form of it: kill only, chosen by an environment variable.

``TAILTEACHER_KILL_AT=PATTERN[#N]`` makes the N-th (default first) call of ``kill_point(name)``
whose name matches the shell-style ``PATTERN`` (``fnmatch``) in this process send SIGKILL to
itself. Unset (always, outside tests), a call costs one dictionary lookup.

Names in the code (``docs/reliability.md`` lists the points the fault test uses):

* ``write/<file name>`` — ``io.atomic_write_bytes``, after the temp file is written and synced,
  before it is renamed onto the target (a checkpoint, a json, a report half-way);
* ``<run folder name>/step/<step>`` — the trainer, after the step's hooks (its checkpoint) ran;
* ``predict/<k>`` — prediction, after its k-th image (mid-evaluation);
* ``stage_done/<stage>`` — a pipeline stage whose outputs are written, before its record is.
"""

from __future__ import annotations

import os
import signal
from fnmatch import fnmatchcase

ENV = "TAILTEACHER_KILL_AT"

_hits: dict[str, int] = {}


def _parse(spec: str) -> tuple[str, int]:
    pattern, _, nth = spec.partition("#")
    return pattern, int(nth) if nth else 1


def kill_point(name: str) -> None:
    """SIGKILL this process if ``TAILTEACHER_KILL_AT`` names this point (see the module doc)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    pattern, nth = _parse(spec)
    if not fnmatchcase(name, pattern):
        return
    _hits[pattern] = _hits.get(pattern, 0) + 1
    if _hits[pattern] == nth:
        os.kill(os.getpid(), signal.SIGKILL)
