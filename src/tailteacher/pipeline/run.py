"""`tailteacher run CONFIG`: split → prototypes → teacher → calibrate → student → report.

Every stage runs in its own folder under ``run.run_dir`` and is skipped when it already finished
on the same inputs (``stages.run_stage``): the resolved config of the stage, the bytes of the
json files it reads, and the hashes of the stages it builds on. A run stopped part-way (Ctrl-C,
kill -9, a lost node) is resumed by running the same command again; a training stage continues
from its last checkpoint. Image files are not hashed (a json names them; re-hashing millions of
images would cost more than a stage).

Folders: ``split/`` (only when ``data.heldout_json`` is null: the 85/15 split of
``data.train_json``), ``mining/`` (only with a ``mining`` section: the student's unlabeled images
mined from ``mining.pool``; they replace ``data.unlabeled_json``), ``prototypes/`` (only for
``targets.kind=similarity`` without ``targets.prototypes``), ``teacher/``, ``calibration/``,
``control/`` (the student's schedule on labeled images only, w = 0: the baseline every student is
compared with), ``student/``, and ``report.md`` / ``report.json`` at the top, rewritten by every run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config, StudentConfig
from ..engine.config_files import config_hash
from ..errors import InputError
from ..report.markdown import CONTROL, model_rows, write_report
from .stages import StageOutcome, file_hash, run_stage

Log = Callable[[str], None]


def with_updates(config: Config, **sections: Mapping[str, Any] | None) -> Config:
    """``config`` with fields of its sections replaced, validated again: ``with_updates(c,
    run={"run_dir": "x"}, targets={"kind": "onehot"})``."""
    raw = config.model_dump(mode="json")
    for name, values in sections.items():
        if values is None:
            raw[name] = None
            continue
        base = raw.get(name) or {}
        raw[name] = {**base, **values}
    return Config.model_validate(raw)


def data_hashes(config: Config) -> dict[str, str]:
    """SHA-256 of every json the config names (a changed annotation file reruns what read it)."""
    d = config.data
    files = {
        "train": d.train_json,
        "val": d.val_json,
        "heldout": d.heldout_json,
        "unlabeled": d.unlabeled_json,
    }
    return {k: file_hash(v) for k, v in files.items() if v is not None}


# -- the stages, each a plain function of a config -------------------------------------------------


def split_stage(
    config: Config, folder: Path, log: Log, fraction: float = 0.15, seed: int = 0
) -> StageOutcome:
    """The held-out split of ``data.train_json`` into ``folder/{train,heldout}.json``."""
    from ..data.lvis_json import load_lvis
    from ..data.split import write_split

    def action(resume: bool) -> dict[str, Any]:
        write_split(load_lvis(config.data.train_json, config.data.image_root), folder, fraction, seed)
        return {"train_json": str(folder / "train.json"), "heldout_json": str(folder / "heldout.json")}

    inputs = {"train": file_hash(config.data.train_json), "fraction": fraction, "seed": seed}
    return run_stage("split", folder, inputs, action, log=log)


def mine_stage(config: Config, folder: Path, log: Log) -> StageOutcome:
    """The paper's §4.1: ``mining.pool`` searched for the chosen classes into
    ``folder/unlabeled.json`` (``mining.mine``); a stopped stage resumes from the embedding
    shards cached under ``folder/cache``."""
    from ..mining.mine import mine

    assert config.mining is not None
    m = config.mining

    def action(resume: bool) -> dict[str, Any]:
        result = mine(config, folder, log=log, show_progress=False)
        return {"unlabeled_json": str(result.unlabeled_json), "summary": result.summary}

    pool_file = Path(m.pool)
    inputs = {
        # train and targets.crop_size, the model's weights and the data, not where the run lives
        "config": config_hash(config, exclude=("run", "student")),
        "data": data_hashes(config),
        "pool": file_hash(m.pool) if pool_file.is_file() else m.pool,  # a folder: its path only
        "truth": file_hash(m.truth_json) if m.truth_json else None,
    }
    return run_stage("mine", folder, inputs, action, log=log)


def prototypes_stage(
    config: Config, folder: Path, log: Log, checkpoint: str | None = None, after: str = ""
) -> StageOutcome:
    """Eq. 1 prototypes from the backbone's trunk (``model.weights``) or a trained ``checkpoint``."""
    from .prototypes import compute_prototypes

    cfg = with_updates(config, run={"run_dir": str(folder)})

    def action(resume: bool) -> dict[str, Any]:
        return {"prototypes": str(compute_prototypes(cfg, checkpoint, progress=False))}

    inputs = {
        "config": config_hash(cfg, exclude=("run", "student", "train", "targets")),
        "data": file_hash(cfg.data.train_json),
        "checkpoint": checkpoint,
        "after": after,
    }
    return run_stage("prototypes", folder, inputs, action, log=log)


def teacher_stage(
    config: Config, folder: Path, log: Log, name: str = "teacher", after: str = ""
) -> StageOutcome:
    """Train and evaluate a teacher as ``config`` says, in ``folder``."""
    from .teacher import train_teacher

    cfg = with_updates(config, run={"run_dir": str(folder)}, student=None)

    def action(resume: bool) -> dict[str, Any]:
        result = train_teacher(with_updates(cfg, run={"resume": resume}))
        checkpoint = str(folder / "model_final.safetensors")
        targets = cfg.targets.model_dump(mode="json")  # a student's labeled batches use the same
        return {
            "metrics": result.metrics,
            "val_ece": val_ece(cfg, folder),
            "checkpoint": checkpoint,
            "targets": targets,
        }

    inputs = {"config": config_hash(cfg), "data": data_hashes(cfg), "after": after}
    return run_stage(name, folder, inputs, action, log=log)


def calibrate_stage(config: Config, teacher: StageOutcome, root: Path, log: Log) -> StageOutcome:
    """Δ and ECE of ``teacher`` on ``data.heldout_json``, into ``root/calibration``."""
    from .calibrate import calibrate_teacher

    cfg = with_updates(config, run={"run_dir": str(root)}, student=None)

    def action(resume: bool) -> dict[str, Any]:
        report, out = calibrate_teacher(cfg, teacher.result["checkpoint"])
        ece = {g: report.ece(g) for g in ("all", "r", "c", "f")}
        return {"delta": str(out / "delta.safetensors"), "heldout_ece": ece}

    inputs = {"teacher": teacher.hash, "data": data_hashes(cfg)}
    return run_stage("calibrate", root / "calibration", inputs, action, log=log)


#: Pool images the pseudo-label check runs the teacher on (about 30 s on 2 CPU cores at 96 px).
PSEUDO_LABEL_CHECK_IMAGES = 200


def pseudo_label_stage(
    config: Config,
    student: StudentConfig,
    teacher: StageOutcome,
    calibration: StageOutcome | None,
    root: Path,
    log: Log,
) -> StageOutcome | None:
    """Precision and recall of the student's pseudo-labels against the pool's truth, into
    ``root/pseudo_labels/pseudo_labels.json``; None when the pool has no ``unlabeled_truth.json``
    beside ``data.unlabeled_json`` (only a benchmark knows its pool's truth)."""
    assert config.data.unlabeled_json is not None
    truth_file = Path(config.data.unlabeled_json).with_name("unlabeled_truth.json")
    if not truth_file.is_file() or (student.pseudo_labels == "calibrated" and calibration is None):
        return None

    def action(resume: bool) -> dict[str, Any]:
        from safetensors.torch import load_file

        from ..data.dataset import LvisDataset, Sample
        from ..data.lvis_json import load_lvis
        from ..engine.build import init_run
        from ..io import atomic_write_json
        from .data import load_train_data
        from .detector import build_detector, load_detector_weights
        from .pseudo_label_quality import group_index, measure_pseudo_labels
        from .student import pseudo_label_config

        _, device = init_run(config.train)
        model = build_detector(config, load_train_data(config)).to(device)
        load_detector_weights(model, teacher.result["checkpoint"])
        truth = load_lvis(truth_file, config.data.image_root)
        pool = LvisDataset(truth, sorted(truth.images)[:PSEUDO_LABEL_CHECK_IMAGES])
        samples = (s for s in (pool[k] for k in range(len(pool))) if isinstance(s, Sample))
        delta = load_file(calibration.result["delta"])["delta"] if calibration is not None else None
        groups = group_index([str(c.get("frequency", "f")) for c in truth.categories])
        counts = measure_pseudo_labels(model, samples, pseudo_label_config(student), delta, groups, device)
        payload = {
            "images": counts.images,
            "truth": str(truth_file),
            "mode": student.pseudo_labels,
            "box_threshold": student.box_threshold,
            "threshold_on": student.threshold_on,
            "rows": counts.rows(),
        }
        out = root / "pseudo_labels" / "pseudo_labels.json"
        atomic_write_json(out, payload, indent=2)
        return {"file": str(out), "rows": payload["rows"]}

    rule = student.model_dump(
        include={
            "pseudo_labels",
            "box_threshold",
            "top_k",
            "lam",
            "support",
            "threshold_on",
            "ignore_threshold",
            "renormalize",
        }
    )
    inputs = {
        "teacher": teacher.hash,
        "calibration": calibration.hash if calibration is not None else None,
        "rule": rule,
        "truth": file_hash(str(truth_file)),
        "images": PSEUDO_LABEL_CHECK_IMAGES,
    }
    return run_stage("pseudo_labels", root / "pseudo_labels", inputs, action, log=log)


def student_stage(
    config: Config,
    student: StudentConfig,
    teacher: StageOutcome,
    calibration: StageOutcome | None,
    folder: Path,
    log: Log,
    name: str = "student",
) -> StageOutcome:
    """Train and evaluate a student from ``teacher`` (and its Δ for calibrated pseudo-labels)."""
    from .student import train_student

    config = with_updates(config, targets=teacher.result["targets"])  # labeled batches as the teacher's
    fill: dict[str, Any] = {"teacher_checkpoint": teacher.result["checkpoint"]}
    if student.pseudo_labels == "calibrated":
        if calibration is None:
            raise InputError(
                "student.pseudo_labels=calibrated needs the calibration stage (data.heldout_json)"
            )
        fill["delta"] = calibration.result["delta"]
    cfg = with_updates(
        config, run={"run_dir": str(folder)}, student={**student.model_dump(mode="json"), **fill}
    )

    def action(resume: bool) -> dict[str, Any]:
        result = train_student(with_updates(cfg, run={"resume": resume}))
        checkpoint = str(folder / "model_final.safetensors")
        return {"metrics": result.metrics, "val_ece": val_ece(cfg, folder), "checkpoint": checkpoint}

    after = [teacher.hash, calibration.hash if calibration is not None else ""]
    inputs = {"config": config_hash(cfg), "data": data_hashes(cfg), "after": after}
    return run_stage(name, folder, inputs, action, log=log)


def control_config(student: StudentConfig) -> StudentConfig:
    """The control of ``student``: the same initialisation (the teacher), schedule and labeled
    batches, no pseudo-labels (w = 0). Only the keys that change its training are kept, so a new
    pseudo-label setting does not retrain it."""
    return StudentConfig(
        pseudo_labels="onehot",
        unsup_weight=0.0,
        unlabeled_batch_size=student.unlabeled_batch_size,
        max_steps=student.max_steps,
        lr=student.lr,
        warmup_steps=student.warmup_steps,
    )


def val_ece(config: Config, model_dir: Path) -> dict[str, float | None]:
    """ECE (overall and per group) of a trained model's ``val_results.json`` on ``data.val_json``,
    with its diagrams in ``model_dir/val_calibration`` (the same matching as the calibrate stage)."""
    from ..evaluation.report import write_calibration

    report = write_calibration(
        config.data.val_json, model_dir / "val_results.json", model_dir / "val_calibration"
    )
    return {g: report.ece(g) for g in ("all", "r", "c", "f")}


# -- the whole pipeline ----------------------------------------------------------------------------


@dataclass
class PipelineResult:
    run_dir: Path
    rows: dict[str, dict[str, float | None]] = field(default_factory=dict)
    stages: list[StageOutcome] = field(default_factory=list)


def run_pipeline(config: Config, *, log: Log = print) -> PipelineResult:
    """Run (or resume) every stage of ``config`` and write ``report.md`` / ``report.json`` and
    ``report.html``."""
    root = Path(config.run.run_dir)
    result = PipelineResult(root)
    cfg = config
    if cfg.data.heldout_json is None:
        split = split_stage(cfg, root / "split", log)
        result.stages.append(split)
        cfg = with_updates(cfg, data=split.result)
    if cfg.mining is not None:
        mined = mine_stage(cfg, root / "mining", log)
        result.stages.append(mined)
        # the stages after it see the mined images as data.unlabeled_json and no mining section
        cfg = with_updates(cfg, data={"unlabeled_json": mined.result["unlabeled_json"]}, mining=None)
    after = ""
    if cfg.targets.kind == "similarity" and cfg.targets.prototypes is None:
        protos = prototypes_stage(cfg, root / "prototypes", log)
        result.stages.append(protos)
        cfg = with_updates(cfg, targets={"prototypes": protos.result["prototypes"]})
        after = protos.hash
    teacher = teacher_stage(cfg, root / "teacher", log, after=after)
    result.stages.append(teacher)
    calibration = calibrate_stage(cfg, teacher, root, log) if cfg.data.heldout_json else None
    if calibration is not None:
        result.stages.append(calibration)
    student_cfg = cfg.student or StudentConfig()
    models = {"teacher": teacher}
    if cfg.data.unlabeled_json is not None:
        control = student_stage(
            cfg, control_config(student_cfg), teacher, None, root / "control", log, name="control"
        )
        result.stages.append(control)
        models[CONTROL] = control
        check = pseudo_label_stage(cfg, student_cfg, teacher, calibration, root, log)
        if check is not None:
            result.stages.append(check)
        student = student_stage(cfg, student_cfg, teacher, calibration, root / "student", log)
        result.stages.append(student)
        models[f"student ({student_cfg.pseudo_labels})"] = student
    else:
        log("[student] skipped: data.unlabeled_json is not set")
    result.rows = model_rows(models)
    write_report(root, cfg, models, result.stages, calibration)
    from ..report import write_html_report

    write_html_report(root)  # the page a person looks at: report.html, the figures inlined
    return result
