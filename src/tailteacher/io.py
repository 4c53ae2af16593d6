"""Files written atomically (a reader never sees a half-written json, checkpoint or image), and
json read with errors that name the file."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import InputError, Problem
from .failpoints import kill_point


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and ``os.replace``.

    A failed write (``OSError``, e.g. ENOSPC on a full disk) removes the temp file, leaves an
    existing ``path`` as it was, and is raised naming ``path``.

    The file gets the usual permissions (0666 less the umask), not mkstemp's private 0600, so
    checkpoints and configs stay readable by a team on a shared cluster.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        kill_point(f"write/{target.name}")  # fault tests: the temp file complete, not yet in place
        os.replace(tmp, target)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.filename is None:  # a failed write (a full disk) names no file: name the target
            raise OSError(err.errno, err.strerror or str(err), str(target)) from err
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = None) -> None:
    """Serialise ``obj`` as json (keys in insertion order, UTF-8) and write it atomically."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: json creates a dict per record and no cycles, and
    collections triggered by those allocations took 40 % of parsing 150k detections."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_json(path: str | os.PathLike[str], *, parse_constant: Callable[[str], Any] | None = None) -> Any:
    """Parse a json file (UTF-8, a byte-order mark allowed); a missing, unreadable or invalid file
    is an ``InputError`` naming it. ``parse_constant`` sees ``NaN`` / ``Infinity`` literals."""
    name = str(path)
    try:
        text = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError([Problem(name, "file", "-", "no such file")]) from None
    except IsADirectoryError:
        raise InputError([Problem(name, "file", "-", "is a directory, expected a json file")]) from None
    except OSError as err:
        raise InputError([Problem(name, "file", "-", f"cannot be read: {err.strerror}")]) from None
    try:
        with _gc_paused():
            return json.loads(text, parse_constant=parse_constant)
    except json.JSONDecodeError as err:
        raise InputError(
            [Problem(name, f"line {err.lineno} column {err.colno}", "-", f"invalid json: {err.msg}")]
        ) from None
    except UnicodeDecodeError as err:
        raise InputError([Problem(name, f"byte {err.start}", "-", "not UTF-8 text")]) from None
