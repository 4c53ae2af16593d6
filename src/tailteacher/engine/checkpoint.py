"""Checkpoint files: written atomically, found through a pointer file, loaded with ``weights_only=True``.

Layout of a checkpoint folder::

    step_00000100.pt          one file per saved step (torch.save of plain types and tensors)
    step_00000200.pt
    last_checkpoint.json      {"file": "step_00000200.pt", "step": 200}, written after the file

A file is written to a temporary name and renamed (``tailteacher.io.atomic_write_bytes``), and the
pointer is updated only after the rename, so a crash or a ``kill -9`` at any moment leaves the
pointer on a complete checkpoint. Older files beyond ``keep`` are removed after the pointer moved.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_write_bytes, atomic_write_json

POINTER = "last_checkpoint.json"
FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Serialise ``state`` and write it atomically to ``path``."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint onto the CPU with ``weights_only=True`` (no arbitrary code runs)."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a tailteacher checkpoint of format {FORMAT_VERSION}")
    return state


class Checkpointer:
    """Saves numbered checkpoints into ``directory`` and finds the latest one.

    Args:
        directory: the checkpoint folder (created on first save).
        keep: how many of the newest checkpoints to keep (≥ 1); None keeps all.
    """

    def __init__(self, directory: str | os.PathLike[str], *, keep: int | None = 2) -> None:
        if keep is not None and keep < 1:
            raise ValueError(f"keep: expected ≥ 1 or None, got {keep}")
        self.directory = Path(directory)
        self.keep = keep

    @staticmethod
    def file_name(step: int) -> str:
        return f"step_{step:08d}.pt"

    def save(self, step: int, state: dict[str, Any]) -> Path:
        """Write ``state`` as the checkpoint of ``step``, move the pointer to it, prune old ones."""
        path = self.directory / self.file_name(step)
        save_checkpoint(path, state)
        atomic_write_json(self.directory / POINTER, {"file": path.name, "step": step})
        self._prune(keep_name=path.name)
        return path

    def latest(self) -> Path | None:
        """The checkpoint the pointer names, or None where there is no pointer yet."""
        pointer = self.directory / POINTER
        if not pointer.exists():
            return None
        try:
            name = json.loads(pointer.read_text(encoding="utf-8"))["file"]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{pointer}: unreadable checkpoint pointer ({err})") from None
        path = self.directory / str(name)
        if not path.exists():
            raise ValueError(f"{pointer}: names {name}, which does not exist")
        return path

    def saved(self) -> list[Path]:
        """Complete checkpoint files, oldest first (temporary files are not listed)."""
        return sorted(self.directory.glob("step_*.pt"))

    def remove_temporary_files(self) -> None:
        """Delete the temporary files a process killed while writing left behind."""
        for tmp in self.directory.glob(".step_*.pt.*.tmp"):
            tmp.unlink(missing_ok=True)

    def _prune(self, keep_name: str) -> None:
        if self.keep is None:
            return
        old = [p for p in self.saved() if p.name != keep_name]
        for path in old[: max(0, len(old) - (self.keep - 1))]:
            path.unlink(missing_ok=True)
