"""Stages of a pipeline that are skipped when done and resumed when stopped.

A stage owns one folder. When it finishes, ``stage.json`` is written there (atomically) with the
hash of what the stage computes from (its resolved config and the hashes of the stages it reads).
Running the stage again:

* ``stage.json`` present with the same hash: skipped, its recorded result returned;
* ``stage.started.json`` present with the same hash (the stage was stopped): run again with
  ``resume=True``, so a training stage continues from its last checkpoint;
* either file present with another hash: refused (exit 2), so that a changed config never
  silently mixes with old outputs; the message names the folder to remove or the setting to change;
* either file written under another hashing rule (``HASH_VERSION``; records before it have none):
  refused with a message that says so, since its hash cannot be compared with this version's;
* neither: run from the start.

Under torchrun (several processes) rank 0 reads and writes the records and decides; every rank
follows its decision (``engine.main_rank.on_main``), runs the action (a training stage trains
with DDP, a stage of one process's work does it on rank 0 inside the action) and returns rank 0's
result. Records say how many processes ran the stage (``processes``); a stage started with N
processes may be resumed with another number (the engine warns that its random streams restart).

A stage that is to run holds ``stage.lock`` in its folder (an OS file lock, ``filelock``) until it
has finished, so that two processes never run the same stage at once: a second process waits for
the first and then finds the stage done (``ablate --rows`` relies on it, D125). A finished stage is
answered without the lock.

Inside ``finished_only()`` (``ablate --collect``) nothing runs: a finished stage with the same
hash is returned, one with another hash is refused, and any other raises ``StageNotFinished``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ..engine.config_files import canonical_hash
from ..engine.distributed import current_dist_info
from ..engine.main_rank import on_main
from ..errors import InputError
from ..failpoints import kill_point
from ..io import atomic_write_json

DONE = "stage.json"
STARTED = "stage.started.json"

#: The rule by which a stage's inputs become its hash, recorded as ``hash_version`` in both records.
#: 1 (records without the field): the whole config and every json the config names. 2: only the
#: settings that change a result (no run-only keys, D85) and the jsons the stage reads (D86).
HASH_VERSION = 2

_FINISHED_ONLY: ContextVar[bool] = ContextVar("finished_only", default=False)


class StageNotFinished(Exception):
    """Raised inside ``finished_only()`` by a stage that has not finished (on any inputs)."""


@contextmanager
def finished_only() -> Iterator[None]:
    """Within this block ``run_stage`` runs nothing: it returns finished stages whose hash matches,
    refuses those with another hash, and raises ``StageNotFinished`` for the rest."""
    token = _FINISHED_ONLY.set(True)
    try:
        yield
    finally:
        _FINISHED_ONLY.reset(token)


#: (path, size, mtime_ns) → SHA-256: every stage hashes the jsons it reads, and an LVIS train json
#: is ~1 GB, so each file is read once per process unless it changes.
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (an input json: a changed file changes every stage after it)."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


@dataclass(frozen=True)
class StageOutcome:
    name: str
    folder: Path
    hash: str
    result: dict[str, Any]
    skipped: bool
    seconds: float


def read_record(path: Path) -> dict[str, Any] | None:
    """A stage record (``stage.json`` / ``stage.started.json``); None when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def remove_temporary_files(folder: Path, *, recursive: bool = False) -> int:
    """Delete the temp files a killed ``io.atomic_write_bytes`` leaves (``.NAME.*.tmp``) in
    ``folder`` (and below it); returns how many. Only the stage that owns a folder calls it."""
    found = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    count = 0
    for path in found:
        if path.is_file():
            path.unlink(missing_ok=True)
            count += 1
    return count


def run_stage(
    name: str,
    folder: str | Path,
    inputs: Mapping[str, Any],
    action: Callable[[bool], Mapping[str, Any]],
    *,
    log: Callable[[str], None] = print,
) -> StageOutcome:
    """Run ``action(resume)`` in ``folder`` unless it already ran on the same ``inputs``.

    Args:
        name: the stage's name, for messages.
        folder: the stage's own folder (created).
        inputs: everything the stage computes from (JSON-serialisable): its resolved config,
            input file hashes, the hashes of the stages it reads.
        action: does the work; called with ``resume=True`` when an earlier attempt stopped
            part-way. Returns a JSON-serialisable summary (metrics, output paths) that later
            stages and the report read.
        log: where progress lines go.

    Returns:
        The outcome; ``result`` is the action's summary, read back from ``stage.json`` when skipped.

    Raises:
        InputError: the folder holds a stage run on other inputs or recorded under another hashing
            rule (``HASH_VERSION``).
        StageNotFinished: inside ``finished_only()``, the stage has not finished.
    """
    folder = Path(folder)
    digest = canonical_hash(dict(inputs))
    held: list[FileLock] = []

    def decide() -> tuple[bool, bool, dict[str, Any]]:
        # A finished stage, a refused one and --collect are answered without the lock and write
        # nothing; a stage to run is decided under it, since another process may have finished
        # it while this one waited (D125).
        started = read_record(folder / STARTED)
        other = started is not None and started.get("hash") != digest
        if _FINISHED_ONLY.get() or read_record(folder / DONE) is not None or other:
            return _decide(name, folder, digest, inputs, log)
        held.append(_lock_stage(name, folder, log))
        try:
            return _decide(name, folder, digest, inputs, log)
        except BaseException:
            held.pop().release()
            raise

    # Under torchrun rank 0 reads the records, holds the lock and decides; every rank follows
    # (on_main), so that no rank skips a stage its peers run. The action runs on every rank (a
    # training stage is a collective; a stage done by one process wraps its work in on_main itself),
    # and rank 0 alone writes the records and its result becomes every rank's.
    skipped, resume, result = on_main(decide)
    if skipped:  # another process finished it while this one waited for the lock
        for lock in held:
            lock.release()
        return StageOutcome(name, folder, digest, result, True, 0.0)
    try:
        t0 = time.perf_counter()
        result = dict(action(resume))
        seconds = round(time.perf_counter() - t0, 1)
        result = on_main(lambda: _finish(name, folder, digest, inputs, result, seconds, log))
    finally:
        for lock in held:
            lock.release()
    return StageOutcome(name, folder, digest, result, False, seconds)


#: The lock file a running stage holds in its folder (D125).
LOCK = "stage.lock"


def _lock_stage(name: str, folder: Path, log: Callable[[str], None]) -> FileLock:
    """Hold ``folder/stage.lock`` (an OS file lock, released when the process ends however it
    ends). Another process holding it is running the stage: one process waits for it; under
    torchrun the job is refused instead (exit 2), since its other ranks would wait inside a
    collective whose timeout the other process's stage may outlast."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if current_dist_info().is_distributed:
            raise InputError(
                f"{folder / LOCK}: stage {name!r} is being run by another process; run this job "
                "again when it has finished (the stage is then skipped), or use another run.run_dir"
            ) from None
        log(f"[{name}] another process is running this stage ({folder / LOCK}); waiting for it")
        lock.acquire()
    return lock


def _decide(
    name: str, folder: Path, digest: str, inputs: Mapping[str, Any], log: Callable[[str], None]
) -> tuple[bool, bool, dict[str, Any]]:
    """(skipped, resume, recorded result) for the stage in ``folder``; writes ``stage.started.json``
    when the stage is to run. Raises as ``run_stage`` documents."""
    collecting = _FINISHED_ONLY.get()
    done = read_record(folder / DONE)
    if done is not None:
        _check_version(name, folder / DONE, done)
        if done.get("hash") == digest:
            log(f"[{name}] done already ({folder}), skipped")
            return True, False, dict(done.get("result", {}))
        if collecting:
            raise InputError(
                f"{folder / DONE}: stage {name!r} finished with other inputs than this config gives "
                "(config or data changed since it ran); collect with the config and --set it ran with"
            )
        raise InputError(
            f"{folder / DONE}: stage {name!r} finished here with other inputs (config or data "
            "changed); remove the folder or choose another run.run_dir"
        )
    if collecting:
        raise StageNotFinished(f"{folder}: stage {name!r} has not finished")
    started = read_record(folder / STARTED)
    resume = False
    if started is not None:
        _check_version(name, folder / STARTED, started)
        if started.get("hash") != digest:
            raise InputError(
                f"{folder / STARTED}: stage {name!r} was started here with other inputs (config or "
                "data changed); remove the folder or choose another run.run_dir"
            )
        resume = True
        log(f"[{name}] resuming the stopped stage in {folder}")
    else:
        log(f"[{name}] running in {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    remove_temporary_files(folder, recursive=True)
    atomic_write_json(folder / STARTED, _record(name, digest, inputs), indent=2)
    return False, resume, {}


def _record(name: str, digest: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The fields ``stage.started.json`` and ``stage.json`` share."""
    return {
        "stage": name,
        "hash_version": HASH_VERSION,
        "hash": digest,
        "processes": current_dist_info().world_size,
        "inputs": dict(inputs),
    }


def _finish(
    name: str,
    folder: Path,
    digest: str,
    inputs: Mapping[str, Any],
    result: dict[str, Any],
    seconds: float,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Write ``stage.json`` (rank 0's ``result``) and remove ``stage.started.json``; returns ``result``."""
    kill_point(f"stage_done/{name}")  # fault tests: outputs written, the record not
    record = {
        **_record(name, digest, inputs),
        "seconds": seconds,
        "result": result,
    }
    atomic_write_json(folder / DONE, record, indent=2)
    (folder / STARTED).unlink(missing_ok=True)
    log(f"[{name}] finished in {seconds:.0f} s")
    return result


def _check_version(name: str, path: Path, record: Mapping[str, Any]) -> None:
    """Refuse a record written under another hashing rule: its hash says nothing about this one's."""
    version = record.get("hash_version")
    if version == HASH_VERSION:
        return
    if isinstance(version, int) and version > HASH_VERSION:
        who = f"a newer tailteacher (stage hash version {version}; this one uses {HASH_VERSION})"
    else:
        shown = 1 if version is None else version
        who = (
            f"an older tailteacher (stage hash version {shown}; this one uses {HASH_VERSION}, "
            "which hashes only the settings and files that change the stage's result)"
        )
    raise InputError(
        f"{path}: stage {name!r} was recorded by {who}, so whether it ran on the same inputs cannot "
        f"be told; remove {path.parent} to run the stage again with this version, or finish the "
        "run with the tailteacher version that started it"
    )
