"""Progress of long work: a tqdm bar with ETA in a terminal, plain lines in a log.

A bar redraws itself with carriage returns; written to a file (CI, ``nohup``, a SLURM log) every
redraw stays, and a long training leaves megabytes of them. ``progress`` decides once, from
whether the stream is a terminal: a tqdm bar there, otherwise a :class:`LineProgress` that
writes one plain line every ``every`` steps (and at the last step), with the same ETA.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sized
from typing import Any, Generic, Protocol, TextIO, TypeVar

T = TypeVar("T")

#: Lines a plain log gets per bar when ``every`` is not given (plus the last step's).
LINES_PER_BAR = 20


class Progress(Protocol):
    """What the callers use of a progress bar (tqdm's names)."""

    def update(self, n: int = 1) -> Any: ...

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True) -> Any: ...

    def close(self) -> Any: ...


def format_seconds(seconds: float) -> str:
    """``75.4`` → ``"1:15"``, ``3725`` → ``"1:02:05"`` (tqdm's style)."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class LineProgress(Generic[T]):
    """A progress "bar" for logs: ``desc 40/200 (20%) 0:12 elapsed, ETA 0:48, loss=0.3``, one line
    every ``every`` steps and at the last one; iterable like tqdm when given an iterable."""

    def __init__(
        self,
        iterable: Iterable[T] | None = None,
        *,
        total: int | None = None,
        initial: int = 0,
        desc: str = "",
        every: int | None = None,
        file: TextIO | None = None,
        clock: Any = time.perf_counter,
    ) -> None:
        if total is None and isinstance(iterable, Sized):
            total = len(iterable)
        self.iterable = iterable
        self.total = total
        self.n = initial
        self.desc = desc
        self.every = every or max(1, math.ceil((total or LINES_PER_BAR) / LINES_PER_BAR))
        self.file = file
        self._clock = clock
        self._start = clock()
        self._start_n = initial
        self._postfix: dict[str, Any] = {}
        self._last_written = initial

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("LineProgress: nothing to iterate (made without an iterable)")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n % self.every == 0 or (self.total is not None and self.n >= self.total):
            self._write()

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True) -> None:
        self._postfix = dict(ordered_dict or {})

    def close(self) -> None:
        if self.n != self._last_written:
            self._write()

    def line(self) -> str:
        """The line this progress writes now."""
        elapsed = self._clock() - self._start
        done = self.n - self._start_n
        count = f"{self.n}/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else str(self.n)
        tail = [f"{format_seconds(elapsed)} elapsed"]
        if self.total and done > 0:
            tail.append(f"ETA {format_seconds(elapsed / done * max(0, self.total - self.n))}")
        tail += [f"{k}={v}" for k, v in self._postfix.items()]
        head = f"{self.desc} {count}" if self.desc else count
        return f"{head} " + ", ".join(tail)

    def _write(self) -> None:
        self._last_written = self.n
        print(self.line(), file=self.file or sys.stderr, flush=True)


def is_terminal(stream: TextIO | None) -> bool:
    """Whether ``stream`` (default stderr) is an interactive terminal."""
    stream = stream or sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    initial: int = 0,
    desc: str = "",
    unit: str = "it",
    every: int | None = None,
    file: TextIO | None = None,
    terminal: bool | None = None,
) -> Any:
    """A tqdm bar on a terminal (``terminal`` None: ask ``file``, default stderr), a
    :class:`LineProgress` writing a line every ``every`` steps otherwise. Use it as tqdm:
    iterate over it, or call ``update``/``set_postfix``/``close``."""
    if terminal is None:
        terminal = is_terminal(file)
    if terminal:
        from tqdm import tqdm

        return tqdm(
            iterable, total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, file=file
        )
    return LineProgress(iterable, total=total, initial=initial, desc=desc, every=every, file=file)
