"""What a finished run (or one seed of an ablation) left on disk, read for the HTML report.

A trained model's folder holds ``val_metrics.json`` (LVIS metrics, per-category AP),
``val_results.json`` (its detections on val), ``val_calibration/`` (calibration.json and the
reliability diagrams) and ``config.yaml`` (its resolved config). Nothing here trains or
predicts: a section whose file is missing is reported as missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError

GROUPS = ("all", "r", "c", "f")


def read_json(path: Path) -> Any:
    """``path``'s json; a broken file is an ``InputError`` naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid json ({err})") from None


@dataclass(frozen=True)
class ModelRun:
    """One trained model of a run: its table name and its folder."""

    name: str
    folder: Path

    @property
    def exists(self) -> bool:
        return (self.folder / "val_metrics.json").is_file()

    @cached_property
    def val_metrics(self) -> dict[str, Any]:
        data: dict[str, Any] = read_json(self.folder / "val_metrics.json")
        return data

    @property
    def per_category(self) -> list[dict[str, Any]]:
        return list(self.val_metrics.get("per_category", []))

    @cached_property
    def calibration(self) -> dict[str, Any] | None:
        path = self.folder / "val_calibration" / "calibration.json"
        return read_json(path) if path.is_file() else None

    @property
    def ece(self) -> dict[str, float | None]:
        """ECE per group (``all``, ``r``, ``c``, ``f``) on val; None where not measured."""
        values = (self.calibration or {}).get("ece", {})
        return {g: values.get(g) for g in GROUPS}

    def reliability_png(self, group: str) -> Path | None:
        path = self.folder / "val_calibration" / f"reliability_{group}.png"
        return path if path.is_file() else None

    @property
    def results_path(self) -> Path | None:
        path = self.folder / "val_results.json"
        return path if path.is_file() else None

    @cached_property
    def config_text(self) -> str | None:
        path = self.folder / "config.yaml"
        return path.read_text(encoding="utf-8") if path.is_file() else None

    @cached_property
    def config(self) -> dict[str, Any]:
        if self.config_text is None:
            return {}
        loaded = yaml.safe_load(self.config_text)
        return loaded if isinstance(loaded, dict) else {}

    @cached_property
    def summary(self) -> dict[str, Any]:
        """``teacher.json`` / ``student.json`` (what the training recorded), or {}."""
        for name in ("student.json", "teacher.json"):
            if (self.folder / name).is_file():
                data: dict[str, Any] = read_json(self.folder / name)
                return data
        return {}

    def row(self) -> dict[str, float | None]:
        """The table row: AP, APr, APc, APf in points and ECE (all)."""
        from .markdown import table_row

        return table_row(self.val_metrics.get("metrics", {}), self.ece)


@dataclass
class RunData:
    """The models of one run: ``teacher``, and where trained, ``control`` and ``student``."""

    root: Path
    teacher: ModelRun
    control: ModelRun | None = None
    student: ModelRun | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> list[ModelRun]:
        return [m for m in (self.teacher, self.control, self.student) if m is not None]

    @property
    def data(self) -> Mapping[str, Any]:
        """The ``data`` section of the most complete config (the student's, else the teacher's)."""
        for m in reversed(self.models):
            if m.config.get("data"):
                section: Mapping[str, Any] = m.config["data"]
                return section
        return {}

    def table(self) -> dict[str, dict[str, float | None]]:
        """teacher / control / student rows, and the student's differences from the control and the
        teacher (``markdown.gain_rows``)."""
        from .markdown import gain_rows

        return gain_rows({m.name: m.row() for m in self.models})


def student_name(folder: Path) -> str:
    """``student (calibrated)``: the student's table name, from its recorded pseudo-label mode."""
    mode = None
    if (folder / "student.json").is_file():
        mode = read_json(folder / "student.json").get("pseudo_labels")
    return f"student ({mode})" if mode else "student"


def teacher_of(student: Path) -> Path | None:
    """The folder of the teacher a student learnt from (its config's ``student.teacher_checkpoint``)."""
    cfg = ModelRun("student", student).config
    checkpoint = (cfg.get("student") or {}).get("teacher_checkpoint")
    return Path(checkpoint).parent if checkpoint else None


def load_models(root: Path, teacher: Path, control: Path | None, student: Path | None) -> RunData:
    """A ``RunData`` of the given folders (those without ``val_metrics.json`` are left out)."""
    run = RunData(root, ModelRun("teacher", teacher))
    if control is not None and (control / "val_metrics.json").is_file():
        run.control = ModelRun("control (labeled only)", control)
    if student is not None and (student / "val_metrics.json").is_file():
        run.student = ModelRun(student_name(student), student)
    return run


def load_run(root: Path) -> RunData:
    """The run folder ``root`` of `tailteacher run` (``teacher/``, ``control/``, ``student/``).

    Raises:
        InputError: ``root`` is not a folder, or has no evaluated teacher.
    """
    if not root.is_dir():
        raise InputError(f"{root}: not a folder (expected the run.run_dir of a finished `tailteacher run`)")
    if not (root / "teacher" / "val_metrics.json").is_file():
        raise InputError(
            f"{root}: not a finished run folder (no teacher/val_metrics.json) and not an ablation "
            "folder (no ablation.json); give the run.run_dir of `tailteacher run` or the --out of "
            "`tailteacher ablate`"
        )
    return load_models(root, root / "teacher", root / "control", root / "student")
