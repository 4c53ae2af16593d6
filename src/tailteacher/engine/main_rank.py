"""Work that one process does for all: rank 0 runs it, every rank gets its result.

Under torchrun a file must be written once (by rank 0), and a decision (skip a stage, resume it)
must be the same on every rank. ``on_main(fn)`` runs ``fn`` on rank 0 only and hands its return
value to every rank; the other ranks wait for it, so once ``on_main`` returns, whatever ``fn``
wrote is there for every rank to read (on a file system the ranks share). An exception ``fn``
raises on rank 0 is raised on every rank, so bad input ends every process with the same message
(exit 2) instead of leaving the peers waiting in their next collective. For one process
``on_main(fn)`` is ``fn()``.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any, TypeVar

from .distributed import broadcast_object, current_dist_info

T = TypeVar("T")


class MainRankError(RuntimeError):
    """Raised on the other ranks when rank 0's work failed with an exception that cannot be sent."""


def on_main(fn: Callable[[], T]) -> T:
    """``fn()`` computed on rank 0, returned on every rank (a collective: every rank must call it).

    Raises:
        whatever ``fn`` raised on rank 0, on every rank (the same type and message when it can be
        pickled, ``MainRankError`` naming it otherwise); the other ranks raise it ``from None``.
    """
    dist = current_dist_info()
    if not dist.is_distributed:
        return fn()
    if dist.is_main:
        try:
            value = fn()
        except Exception as err:
            broadcast_object(("error", _sendable(err)))
            raise
        broadcast_object(("ok", value))
        return value
    status, payload = broadcast_object(None)
    if status == "error":
        raise payload from None
    result: T = payload
    return result


def _sendable(err: Exception) -> Exception:
    """``err`` itself when it survives pickling (``InputError`` does), else a ``MainRankError``."""
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:
        return MainRankError(f"rank 0 failed: {type(err).__name__}: {err}")
    return err


def main_only_action(action: Callable[..., T]) -> Callable[..., T]:
    """``action`` wrapped so that its calls run on rank 0 only (``on_main``), arguments passed on."""

    def wrapped(*args: Any, **kwargs: Any) -> T:
        return on_main(lambda: action(*args, **kwargs))

    return wrapped
