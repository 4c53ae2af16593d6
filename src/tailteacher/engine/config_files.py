"""Saving and hashing a resolved config: any pydantic settings model (the run config, or a user's own).

``config.yaml`` in a run folder is the resolved config, every default written out; its hash
identifies what a checkpoint or a stage was made from. The hash leaves out the ``run`` section and
every setting declared run-only (``settings.RUN_ONLY``: device, workers, logging and checkpoint
cadence): where and how a run executes does not change what it computes (D85).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from ..io import atomic_write_bytes
from ..settings import is_run_only

#: File name of the resolved config inside a run folder.
CONFIG_FILE = "config.yaml"


def canonical_hash(payload: Any) -> str:
    """SHA-256 of ``payload`` as canonical JSON (sorted keys, no spaces, UTF-8)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def result_dump(config: BaseModel, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """``config.model_dump(mode="json")`` without the top-level ``exclude`` keys and without every
    run-only setting at any depth (``settings.RUN_ONLY``): the settings that change a result."""
    dumped = config.model_dump(mode="json", exclude=set(exclude))
    return _strip(config, dumped)


def _strip(model: BaseModel, dumped: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        if name not in dumped or is_run_only(field):
            continue
        value = getattr(model, name)
        out[name] = _strip(value, dumped[name]) if isinstance(value, BaseModel) else dumped[name]
    return out


def config_hash(config: BaseModel, exclude: Iterable[str] = ("run",)) -> str:
    """SHA-256 of the resolved config (canonical JSON, sorted keys) without the ``exclude`` sections
    and the run-only settings (``result_dump``): where a run lives, whether it resumes, its device
    and its logging do not change what it computes."""
    return canonical_hash(result_dump(config, exclude))


def dump_config(config: BaseModel) -> str:
    """The resolved config as YAML, every default written out; reads back to an equal config."""
    header = f"# Resolved config (defaults filled in). config hash: {config_hash(config)}\n"
    body: str = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    return header + body


def save_config(config: BaseModel, run_dir: str | os.PathLike[str]) -> Path:
    """Write ``run_dir/config.yaml`` atomically; returns its path."""
    path = Path(run_dir) / CONFIG_FILE
    atomic_write_bytes(path, dump_config(config).encode("utf-8"))
    return path
