"""Training logs: ``metrics.jsonl`` and TensorBoard scalars in the run folder, and a progress bar.

Only rank 0 writes. On resume from step ``s`` the records a killed run wrote after ``s`` are
dropped (``metrics.jsonl`` is rewritten without them; TensorBoard is opened with
``purge_step=s + 1``), so the logs of a resumed run read as those of one uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import atomic_write_bytes
from .hooks import HookBase

if TYPE_CHECKING:
    from .trainer import Trainer

METRICS_FILE = "metrics.jsonl"


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl``, skipping a last line a kill cut short."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


class MetricsWriter:
    """Appends ``{"step": s, name: value, ...}`` lines to ``run_dir/metrics.jsonl`` and the same
    scalars to TensorBoard in ``run_dir/tensorboard``. ``enabled`` False (ranks other than 0):
    writes nothing."""

    def __init__(self, run_dir: str | os.PathLike[str], *, enabled: bool = True, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.tensorboard = tensorboard
        self._file: Any = None
        self._tb: Any = None
        self._started = False

    @property
    def path(self) -> Path:
        return self.run_dir / METRICS_FILE

    def open(self, start_step: int | None = None) -> None:
        """Open the logs of a run that starts after ``start_step`` completed steps: records of later
        steps are dropped, once (the first call decides). None: append, drop nothing."""
        if not self.enabled or self._file is not None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        purge = None
        if start_step is not None and not self._started:
            if self.path.exists():
                kept = [r for r in read_metrics(self.path) if r["step"] <= start_step]
                text = "".join(json.dumps(r) + "\n" for r in kept)
                atomic_write_bytes(self.path, text.encode("utf-8"))
            purge = start_step + 1 if start_step > 0 else None
        self._started = True
        self._file = self.path.open("a", encoding="utf-8")
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # slow to import: only when used

            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge)

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        self.open()
        finite = {k: float(v) if math.isfinite(v) else None for k, v in metrics.items()}
        self._file.write(json.dumps({"step": step, **finite}) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in metrics.items():
                self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class LoggingHook(HookBase):
    """Writes the step's metrics every ``every`` steps, and on rank 0 shows a progress bar with
    the ETA and the current losses (on stderr: a tqdm bar on a terminal, plain lines in a log,
    ``tailteacher.progress``)."""

    def __init__(self, writer: MetricsWriter | None, *, every: int = 20, progress: bool = True) -> None:
        if every < 1:
            raise ValueError(f"every: expected ≥ 1, got {every}")
        self.writer = writer
        self.every = every
        self.progress = progress
        self._bar: Any = None
        self._last_time = 0.0

    def before_train(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.open(trainer.start_step)
        if self.progress and trainer.dist.is_main:
            from ..progress import progress

            self._bar = progress(total=trainer.max_steps, initial=trainer.start_step, desc="train")
        self._last_time = time.perf_counter()

    def after_step(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        now = time.perf_counter()
        step_time, self._last_time = now - self._last_time, now
        if self._bar is not None:
            self._bar.update(1)
        if trainer.step % self.every != 0 and trainer.step != trainer.max_steps:
            return
        if self._bar is not None:
            shown = {k: f"{v:.4g}" for k, v in metrics.items() if k.startswith("loss") or k == "total_loss"}
            self._bar.set_postfix(shown, refresh=False)
        if self.writer is not None:
            self.writer.write(trainer.step, {**metrics, "time_per_step": step_time})

    def after_train(self, trainer: Trainer) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.writer is not None:
            self.writer.close()
