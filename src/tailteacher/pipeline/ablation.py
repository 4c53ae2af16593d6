"""`tailteacher ablate CONFIG --seeds N`: the paper's Table 1 rows and Fig. 2, N seeds each.

Per seed (``train.seed`` = 0 … N-1; the data and the held-out split stay fixed), in
``OUT/seed{s}/``:

1. the supervised teachers (the paper's Table 1, docs/design.md): one-hot, uniform smoothing, similarity with
   γ = 0, similarity with γ = 1.5; prototypes come from the one-hot teacher's trunk (D46), so the
   one-hot row runs first. ``temperature`` adds the two similarity rows again with that
   temperature (our extension of Eq. 2, docs/decisions.md);
2. the teacher the students learn from (``student_teacher``, default the paper's γ = 1.5 row) is
   calibrated on the held-out split (Δ, Eq. 4);
3. the paper's three students from it: one-hot pseudo-labels, soft pseudo-labels, calibrated
   (Eq. 5); and two of ours: Eq. 5 on the teacher's top-k classes (``support="nonzero"``, D51)
   and a control with the same student steps at w = 0 (labeled images only);
4. Fig. 2: for each fraction f < 1 of the labeled images (one subset per f, the same images for every seed),
   the ``fraction_rows`` teachers again, trained for f × the steps (the same number of epochs).

Every run is a stage (``stages.run_stage``): a stopped ablation resumes, a finished one only
re-aggregates, and separate processes (``only_seed``; ``rows`` within a seed, where a stage that
another process is running is waited for through its ``stage.lock``, D125) can share the work,
e.g. one per GPU. Rows
another process finished (and every row, with ``--collect``) are read by walking the same plan
inside ``stages.finished_only()``: a row counts only when its stage's recorded hash is the one this
config gives; a row finished under another config is refused (exit 2), never mixed in (D87).
Writes ``OUT/ablation.json`` (every value per seed, mean and sample std, students − control and
the other paired comparisons seed by seed, ``paired.py``) and ``OUT/ablation.md``.
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config, StudentConfig
from ..errors import InputError
from ..io import atomic_write_bytes, atomic_write_json
from ..report.markdown import METRICS, format_table, result_row
from .paired import comparison_table, paired_comparisons, per_seed_differences, summarise
from .run import (
    Log,
    calibrate_stage,
    control_config,
    prototypes_stage,
    split_stage,
    student_stage,
    teacher_stage,
    with_updates,
)
from .stages import StageNotFinished, StageOutcome, file_hash, finished_only, run_stage

#: The control row: the students' schedule on labeled images only (``run.control_config``).
CONTROL_ROW = "student_labeled"


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    targets: Mapping[str, Any] = field(default_factory=dict)
    pseudo_labels: str | None = None  # a student row
    unsup_weight: float | None = None  # a student row's w (None: the config's)
    support: str | None = None  # a calibrated student row's Eq. 5 support (None: the config's)
    model: Mapping[str, Any] = field(default_factory=dict)  # a teacher row's model overrides


TEACHER_ROWS = (
    Row("onehot", "supervised, one-hot", {"kind": "onehot"}),
    Row("uniform", "supervised, uniform smoothing", {"kind": "uniform"}),
    Row("sim_g0", "supervised, similarity smoothing (γ = 0)", {"kind": "similarity", "gamma": 0.0}),
    Row(
        "sim_g15", "supervised, similarity + class frequency (γ = 1.5)", {"kind": "similarity", "gamma": 1.5}
    ),
    # Not in the paper: the one-hot teacher without a pretrained backbone (what this benchmark
    # used before D58), to show what pretraining is worth here.
    Row(
        "onehot_random_init",
        "supervised, one-hot, no pretraining (random-init ResNet-18)",
        {"kind": "onehot"},
        model={"backbone": "resnet18", "weights": None, "resnet_norm": "batch"},
    ),
)
STUDENT_ROWS = (
    Row("student_onehot", "semi-supervised baseline (one-hot pseudo-labels)", pseudo_labels="onehot"),
    Row("student_soft", "+ soft student targets", pseudo_labels="soft"),
    # The paper's Eq. 5 as written: λΔ added to every class of the row (support "all"), pinned so
    # that a config shipping our top-k reading (support nonzero) cannot turn this row into the next.
    Row("student_calibrated", "+ calibration correction (Eq. 5)", pseudo_labels="calibrated", support="all"),
    # Not in the paper: Eq. 5 on the teacher's top-k classes only (D51); read literally ("all"),
    # λΔ_j lifts class j in every row, and the classes with the largest Δ take over the argmax.
    Row(
        "student_calibrated_topk",
        "+ calibration correction on the teacher's top-k classes (support nonzero)",
        pseudo_labels="calibrated",
        support="nonzero",
    ),
    # Not in the paper: the same student schedule with w = 0, i.e. the teacher trained on for the
    # student's steps on labeled images only. What the pseudo-label rows add is their gain over this.
    Row(
        CONTROL_ROW,
        "control: student steps without pseudo-labels (w = 0)",
        pseudo_labels="onehot",
        unsup_weight=0.0,
    ),
)


def tempered_rows(temperature: float) -> tuple[Row, ...]:
    """The similarity rows again with ``targets.temperature`` (our extension of Eq. 2)."""
    return tuple(
        Row(
            f"{r.key}_T{temperature:g}",
            f"{r.label}, T = {temperature:g}",
            {**r.targets, "temperature": temperature},
        )
        for r in TEACHER_ROWS
        if r.targets.get("kind") == "similarity"
    )


@dataclass(frozen=True)
class AblationPlan:
    seeds: Sequence[int]
    fractions: Sequence[float] = (0.25, 0.5)
    fraction_rows: Sequence[str] = ("onehot", "sim_g15")
    temperature: float | None = None
    student_teacher: str = "sim_g15"
    #: Train only these rows (teacher or student keys) and what they need; read the others when
    #: another process finished them. None: every row (D125).
    rows: frozenset[str] | None = None

    def teacher_rows(self) -> tuple[Row, ...]:
        extra = tempered_rows(self.temperature) if self.temperature is not None else ()
        return TEACHER_ROWS + extra

    def __post_init__(self) -> None:
        keys = {r.key for r in self.teacher_rows()}
        if not self.seeds:
            raise InputError("--seeds: expected at least one seed")
        for f in self.fractions:
            if not 0 < f < 1:
                raise InputError(f"--fractions: expected fractions in (0, 1), got {f}")
        unknown = [k for k in (*self.fraction_rows, self.student_teacher) if k not in keys]
        if unknown:
            raise InputError(
                f"--fraction-rows/--student-teacher: unknown row(s) {unknown}; rows: {sorted(keys)}"
            )
        every = keys | {r.key for r in STUDENT_ROWS}
        if self.rows is not None:
            unknown = sorted(set(self.rows) - every)
            if unknown or not self.rows:
                raise InputError(
                    f"--rows: unknown row(s) {unknown or ['(none given)']}; rows: {sorted(every)}"
                )

    def selected(self, part: str, pretrained: bool) -> frozenset[str] | None:
        """The row keys this process trains in ``part`` (``"full"`` or ``"fractions"``), with
        what they need: students need ``student_teacher`` and its calibration (``"calibration"``);
        a similarity teacher without a pretrained trunk needs the one-hot teacher's prototypes.
        None: every row."""
        if self.rows is None:
            return None
        similarity = {r.key for r in self.teacher_rows() if r.targets.get("kind") == "similarity"}
        if part == "fractions":
            need = set(self.rows) & set(self.fraction_rows)
        else:
            need = set(self.rows)
            if need & {r.key for r in STUDENT_ROWS}:
                need |= {self.student_teacher, "calibration"}
        if need & similarity and not pretrained:
            need.add("onehot")
        return frozenset(need)


def _only_if(selected: Collection[str] | None, *keys: str) -> AbstractContextManager[None]:
    """Run the stages inside when ``selected`` is None or holds one of ``keys``; else only read
    them if another process finished them (``finished_only``)."""
    if selected is None or any(k in selected for k in keys):
        return nullcontext()
    return finished_only()


def subset_stage(config: Config, fraction: float, folder: Path, log: Log, seed: int = 0) -> StageOutcome:
    """A random ``fraction`` of ``data.train_json``'s images (fixed seed) into ``folder/train.json``."""
    import numpy as np

    from ..data.lvis_json import load_lvis
    from ..data.split import subset_json

    def action(resume: bool) -> dict[str, Any]:
        data = load_lvis(config.data.train_json, config.data.image_root)
        ids = sorted(data.images)
        keep = max(1, round(fraction * len(ids)))
        chosen = sorted(int(ids[i]) for i in np.random.default_rng(seed).permutation(len(ids))[:keep])
        atomic_write_json(folder / "train.json", subset_json(data.raw, chosen))
        return {"train_json": str(folder / "train.json"), "images": keep}

    inputs = {"train": file_hash(config.data.train_json), "fraction": fraction, "seed": seed}
    return run_stage(f"subset {fraction:g}", folder, inputs, action, log=log)


def _supervised_block(
    config: Config,
    rows: Sequence[Row],
    folder: Path,
    log: Log,
    selected: Collection[str] | None = None,
) -> dict[str, StageOutcome]:
    """Teachers for ``rows`` in ``folder/teacher_{key}``; similarity rows use prototypes from the
    pretrained trunk before any detection training when ``model.weights`` is set (the paper's
    order), else from the block's one-hot teacher (a random-init trunk has no structure to give).
    A row not in ``selected`` (None: all) is only read, when another process finished it."""
    out: dict[str, StageOutcome] = {}
    by_key = {r.key: r for r in rows}
    needs_prototypes = any(r.targets.get("kind") == "similarity" for r in rows)
    pretrained = config.model.weights is not None
    order = ["onehot"] if "onehot" in by_key or (needs_prototypes and not pretrained) else []
    order += [r.key for r in rows if r.key != "onehot"]
    protos: StageOutcome | None = None
    for key in order:
        row = by_key.get(key, TEACHER_ROWS[0])
        cfg = with_updates(config, targets=dict(row.targets))
        if row.model:
            cfg = with_updates(cfg, model=dict(row.model))
        after = ""
        try:  # StageNotFinished only inside finished_only(): that row (and what needs it) is left out
            with _only_if(selected, key):
                if row.targets.get("kind") == "similarity":
                    if protos is None and pretrained:
                        protos = prototypes_stage(config, folder / "prototypes", log)
                    if protos is None:
                        if "onehot" not in out:
                            continue
                        onehot = out["onehot"]
                        protos = prototypes_stage(
                            config,
                            folder / "prototypes",
                            log,
                            checkpoint=onehot.result["checkpoint"],
                            after=onehot.hash,
                        )
                    cfg = with_updates(cfg, targets={"prototypes": protos.result["prototypes"]})
                    after = protos.hash
                out[key] = teacher_stage(
                    cfg, folder / f"teacher_{key}", log, name=f"teacher {key}", after=after
                )
        except StageNotFinished:
            continue
    return {k: v for k, v in out.items() if k in by_key}


def run_seed(
    config: Config, plan: AblationPlan, seed: int, root: Path, log: Log, part: str = "all"
) -> dict[str, dict[str, Any]]:
    """Every row of one seed (``part``: ``all``, ``full`` = Table 1, ``fractions`` = Fig. 2's
    fractions < 1; the two are independent); returns {row key@fraction: table row}."""
    cfg = with_updates(config, train={"seed": seed})
    base = root / f"seed{seed}"
    rows: dict[str, dict[str, Any]] = {}
    pretrained = cfg.model.weights is not None
    if part in ("all", "full"):
        rows.update(_full_rows(cfg, plan, base, log, plan.selected("full", pretrained)))
    if part in ("all", "fractions"):
        rows.update(_fraction_rows(cfg, plan, base, log, plan.selected("fractions", pretrained)))
    return rows


def _full_rows(
    cfg: Config, plan: AblationPlan, base: Path, log: Log, selected: Collection[str] | None = None
) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    teachers = _supervised_block(cfg, plan.teacher_rows(), base / "full", log, selected)
    for key, outcome in teachers.items():
        rows[f"{key}@1"] = result_row(outcome.result)
    source = teachers.get(plan.student_teacher)
    if source is None:  # not finished (only inside finished_only())
        return rows
    try:
        with _only_if(selected, "calibration"):
            calibration = calibrate_stage(cfg, source, base / "full", log)
    except StageNotFinished:
        return rows
    student_base = cfg.student or StudentConfig()
    for row in STUDENT_ROWS:
        student = student_row_config(student_base, row)
        try:
            with _only_if(selected, row.key):
                outcome = student_stage(
                    cfg,
                    student,
                    source,
                    calibration,
                    base / "full" / row.key,
                    log,
                    name=row.key.replace("_", " "),
                )
        except StageNotFinished:
            continue
        rows[f"{row.key}@1"] = result_row(outcome.result)
    return rows


def student_row_config(base: StudentConfig, row: Row) -> StudentConfig:
    """The student config of a ``STUDENT_ROWS`` row: ``base`` (the config's ``student`` block) with
    the row's pseudo-labels, w and Eq. 5 support; the control row is ``run.control_config(base)``.

    Raises:
        ValueError: ``row`` is a teacher row (no ``pseudo_labels``).
    """
    if row.key == CONTROL_ROW:
        return control_config(base)
    if row.pseudo_labels is None:
        raise ValueError(f"row {row.key!r} is a teacher row, not a student row")
    update: dict[str, Any] = {"pseudo_labels": row.pseudo_labels}
    if row.unsup_weight is not None:
        update["unsup_weight"] = row.unsup_weight
    if row.support is not None:
        update["support"] = row.support
    return base.model_copy(update=update)


def _fraction_rows(
    cfg: Config, plan: AblationPlan, base: Path, log: Log, selected: Collection[str] | None = None
) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    all_rows = {r.key: r for r in plan.teacher_rows()}
    for fraction in plan.fractions:
        # One subset per seed folder (the same images for every seed): no two processes write it.
        try:
            with _only_if(selected, *plan.fraction_rows):
                subset = subset_stage(cfg, fraction, base / f"fraction{fraction:g}" / "data", log)
        except StageNotFinished:
            continue
        steps = max(1, math.ceil(fraction * (cfg.train.max_steps or 1)))
        warmup = min(cfg.train.warmup_steps, steps // 2)
        fcfg = with_updates(
            cfg,
            data={"train_json": subset.result["train_json"]},
            train={"max_steps": steps, "warmup_steps": warmup},
        )
        block = _supervised_block(
            fcfg, [all_rows[k] for k in plan.fraction_rows], base / f"fraction{fraction:g}", log, selected
        )
        for key, outcome in block.items():
            rows[f"{key}@{fraction:g}"] = result_row(outcome.result)
    return rows


def _mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    xs = [v for v in values if v is not None]
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def aggregate(per_seed: Mapping[int, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """{row@fraction: {metric: (mean, sample std or None)}} over the seeds that have the row."""
    keys: list[str] = []
    for rows in per_seed.values():
        keys += [k for k in rows if k not in keys]
    return {
        k: {m: _mean_std([rows[k].get(m) for rows in per_seed.values() if k in rows]) for m in METRICS}
        for k in keys
    }


def paired_differences(
    per_seed: Mapping[int, Mapping[str, Mapping[str, Any]]], control: str = f"{CONTROL_ROW}@1"
) -> dict[str, dict[str, Any]]:
    """{student row@1: {metric: (mean, sample std) of (row − control) over the seeds that have both}}.

    The difference is taken per seed first (same initialisation, same steps, same seed), so the
    spread of the control across seeds does not enter; this is the comparison a student must win.
    A metric no paired seed has is (None, None). ``paired.paired_comparisons`` gives the same
    differences with every seed's value.
    """
    out: dict[str, dict[str, Any]] = {}
    for row in STUDENT_ROWS:
        key = f"{row.key}@1"
        if key == control or not any(key in r and control in r for r in per_seed.values()):
            continue
        stats = summarise(per_seed_differences(per_seed, key, control))
        out[key] = {m: (stats[m]["mean"], stats[m]["std"]) if m in stats else (None, None) for m in METRICS}
    return out


def _labels(plan: AblationPlan) -> dict[str, str]:
    return {r.key: r.label for r in (*plan.teacher_rows(), *STUDENT_ROWS)}


def render(
    plan: AblationPlan,
    summary: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    meta: Mapping[str, Any],
    paired: Mapping[str, Mapping[str, Any]] | None = None,
    comparisons: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The markdown of ``ablation.md``: Table 1 (all labels), students − control, the paired
    comparisons seed by seed (``paired.paired_comparisons``) and Fig. 2 (label fractions)."""
    labels = _labels(plan)
    full = {labels[k.split("@")[0]]: v for k, v in summary.items() if k.endswith("@1")}
    lines = [
        "# Ablation (the paper's Table 1 and Fig. 2 on the embedded benchmark)",
        "",
        f"Seeds {list(seeds)}; mean ± sample std over seeds (one seed: no std). Mask AP in points on "
        "val (LVIS rules); ECE of the detections matched at IoU ≥ 0.5, 10 bins.",
        f"Students learn from the `{plan.student_teacher}` teacher. Command: `{meta.get('command', '')}`; "
        f"machine: {meta.get('machine', '')}; this process {meta.get('minutes', 0):.1f} min; the finished "
        f"stages' own times sum to {meta.get('stage_minutes', 0):.1f} min.",
        "",
        format_table(full, first="row"),
        "",
    ]
    if paired:
        lines += [
            "## Students − control, paired per seed",
            "",
            "Each student's difference from the control of the same seed (same teacher, steps and "
            "labeled batches, no pseudo-labels), then mean ± sample std of the differences.",
            "",
            format_table({labels[k.split("@")[0]]: v for k, v in paired.items()}, first="row"),
            "",
        ]
    if comparisons:
        lines += [
            "## Paired comparisons, seed by seed",
            "",
            "Each difference is taken within a seed (row − reference), then mean ± sample std over the "
            "seeds; the last two columns give every seed's difference.",
            "",
            comparison_table(comparisons),
            "",
        ]
    if plan.fractions:
        lines += ["## Fig. 2: supervised teachers by fraction of the labeled images", ""]
        fig: dict[str, Mapping[str, Any]] = {}
        for key in plan.fraction_rows:
            for f in (*sorted(plan.fractions), 1.0):
                k = f"{key}@{f:g}"
                if k in summary:
                    fig[f"{labels[key]}, {100 * f:g} %"] = summary[k]
        lines += [format_table(fig, first="row"), ""]
    return "\n".join(lines)


def run_ablation(
    config: Config,
    plan: AblationPlan,
    out: Path,
    *,
    only_seed: int | None = None,
    part: str = "all",
    collect_only: bool = False,
    command: str = "",
    log: Log = print,
) -> tuple[dict[str, dict[str, Any]], Path]:
    """Run (or resume) the plan's seeds (or ``only_seed``; none with ``collect_only``) and write
    ``ablation.{json,md}`` from every row finished so far. Returns the summary and the markdown's path."""
    t0 = time.perf_counter()
    cfg = with_updates(config, run={"run_dir": str(out)})
    if cfg.data.heldout_json is None:
        split = split_stage(cfg, out / "data" / "split", log)
        cfg = with_updates(cfg, data=split.result)
    per_seed: dict[int, dict[str, dict[str, Any]]] = {}
    for seed in plan.seeds:
        if collect_only or (only_seed is not None and seed != only_seed):
            continue
        log(f"== seed {seed} ==")
        per_seed[seed] = run_seed(cfg, plan, seed, out, log, part)
    for seed in plan.seeds:  # rows run by other processes, finished so far, on this config
        if (out / f"seed{seed}").is_dir():
            done = {**finished_rows(cfg, plan, seed, out), **per_seed.get(seed, {})}
            if done:
                per_seed[seed] = done
    summary = aggregate(per_seed)
    seconds = time.perf_counter() - t0
    meta = {
        "command": command,
        "machine": _machine(cfg.train.device),
        "minutes": seconds / 60,
        "stage_minutes": _stage_seconds(out) / 60,
        "seeds": sorted(per_seed),
    }
    paired = paired_differences(per_seed)
    comparisons = paired_comparisons(per_seed, [r.key for r in STUDENT_ROWS], CONTROL_ROW)
    payload = {
        "meta": meta,
        "per_seed": {str(s): per_seed[s] for s in sorted(per_seed)},
        "summary": summary,
        "paired_with_control": paired,
        "comparisons": comparisons,
    }
    atomic_write_json(out / "ablation.json", payload, indent=2)
    md = out / "ablation.md"
    text = render(plan, summary, sorted(per_seed), meta, paired, comparisons)
    atomic_write_bytes(md, text.encode("utf-8"))
    from ..report import write_html_report

    write_html_report(out)  # report.html: the tables, Fig. 2, and one seed's Figs. 3–5
    return summary, md


def _stage_seconds(out: Path) -> float:
    """Sum of the recorded run times of every finished stage under ``out`` (all seeds, all processes)."""
    from .stages import DONE, read_record

    total = 0.0
    for path in out.rglob(DONE):
        record = read_record(path)
        if record is not None:
            total += float(record.get("seconds", 0.0))
    return total


def _machine(device: str) -> str:
    import torch

    # The CPU kernels torch dispatches to (AVX2, AVX512, …): trained numbers repeat for a given
    # thread count on the same kernels, not across them (results.md, twelfth session).
    where = (
        f"{platform.machine()}, {_cpu_count()} CPU cores ({torch.backends.cpu.get_cpu_capability()}),"
        f" torch {torch.__version__}"
    )
    if device != "cpu" and torch.cuda.is_available():
        return f"{where}, {torch.cuda.get_device_name(0)}"
    return f"{where}, CPU only"


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def finished_rows(config: Config, plan: AblationPlan, seed: int, out: Path) -> dict[str, dict[str, Any]]:
    """The rows of ``seed`` under ``out`` that finished on the inputs ``config`` gives them, found by
    walking the plan without running anything (``stages.finished_only``). A row whose stage
    finished with another hash raises ``InputError`` naming its folder (D87)."""
    with finished_only():
        return run_seed(config, plan, seed, out, lambda _: None)
