"""`tailteacher run CONFIG`: split → prototypes → teacher → calibrate → student → report.

Every stage runs in its own folder under ``run.run_dir`` and is skipped when it already finished
on the same inputs (``stages.run_stage``): the settings of the stage that change its result (not
the run-only ones: device, workers, logging and checkpoint cadence, D85), the bytes of the json
files it reads (not their paths, and not the jsons it does not read: the teacher does not read
the unlabeled pool, D86), and the hashes of the stages it builds on. A run stopped part-way
(Ctrl-C, kill -9, a lost node, a preempted job) is resumed by running the same command again, on
this machine or another; a training stage continues from its last checkpoint. Image files are
not hashed (a json names them; re-hashing millions of images would cost more than a stage), and
neither is ``data.image_root``, where they lie on this machine.

Folders: ``split/`` (only when ``data.heldout_json`` is null: the 85/15 split of
``data.train_json``), ``mining/`` (only with a ``mining`` section: the student's unlabeled images
mined from ``mining.pool``; they replace ``data.unlabeled_json``), ``prototypes/`` (only for
``targets.kind=similarity`` without ``targets.prototypes``), ``teacher/``, ``calibration/``,
``control/`` (the student's schedule on labeled images only, w = 0: the baseline every student is
compared with), ``student/``, and ``report.md`` / ``report.json`` at the top, rewritten by every run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config, StudentConfig
from ..engine.config_files import canonical_hash, result_dump
from ..engine.distributed import init_distributed
from ..engine.main_rank import main_only_action, on_main
from ..errors import InputError
from ..report.markdown import CONTROL, model_rows, write_report
from .stages import StageOutcome, file_hash, remove_temporary_files, run_stage

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


#: The data section's json files, by the short names a stage lists in its ``reads``.
DATA_JSONS = ("train", "val", "heldout", "unlabeled")


def data_hashes(config: Config, reads: Iterable[str] = DATA_JSONS) -> dict[str, str]:
    """SHA-256 of the bytes of each json in ``reads`` that the config names (a changed annotation
    file reruns the stages that read it, and only those, D86)."""
    out = {}
    for key in reads:
        if key not in DATA_JSONS:
            raise ValueError(f"unknown data json {key!r}; expected one of {DATA_JSONS}")
        path = getattr(config.data, f"{key}_json")
        if path is not None:
            out[key] = _hash_file(f"data.{key}_json", path)
    return out


def _hash_file(field_name: str, path: str) -> str:
    if not Path(path).is_file():
        raise InputError(f"{field_name}: no such file {path}")
    return file_hash(path)


def stage_config_hash(config: Config, exclude: Iterable[str] = ("run",)) -> str:
    """The hash of the settings in ``config`` that change a stage's result (D85, D86).

    Left out: the ``exclude`` sections; every run-only setting (``settings.RUN_ONLY``: device,
    workers, logging and checkpoint cadence); the locations of files whose bytes are hashed beside
    the config or which an earlier stage made (the data jsons — ``data_hashes`` holds the bytes of
    those the stage reads —, ``data.image_root``, ``student.teacher_checkpoint`` and
    ``student.delta``, which the teacher's and calibration's stage hashes cover); and
    ``targets.prototypes`` enters as its file's bytes' hash, not its path. So a run folder and its
    data can move to another machine and still resume.
    """
    dumped = result_dump(config, exclude)
    data = dumped.get("data")
    if isinstance(data, dict):
        for key in (*(f"{k}_json" for k in DATA_JSONS), "image_root"):
            data.pop(key, None)
    student = dumped.get("student")
    if isinstance(student, dict):
        student.pop("teacher_checkpoint", None)
        student.pop("delta", None)
        # A setting added after runs were finished enters only when it acts, so that those runs
        # keep their hashes (D124).
        if student.get("logit_adjustment") == 0:
            student.pop("logit_adjustment")
    targets = dumped.get("targets")
    if isinstance(targets, dict) and config.targets.prototypes is not None:
        targets["prototypes"] = _hash_file("targets.prototypes", config.targets.prototypes)
    return canonical_hash(dumped)


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
    return run_stage("split", folder, inputs, main_only_action(action), log=log)


def mine_stage(config: Config, folder: Path, log: Log) -> StageOutcome:
    """The paper's §4.1: ``mining.pool`` searched for the chosen classes into
    ``folder/unlabeled.json`` (``mining.mine``); a stopped stage resumes from the embedding
    shards cached under ``folder/cache``. Under torchrun rank 0 mines and the others wait."""
    from ..mining.mine import mine

    assert config.mining is not None
    m = config.mining

    def action(resume: bool) -> dict[str, Any]:
        result = mine(config, folder, log=log, show_progress=False)
        return {"unlabeled_json": str(result.unlabeled_json), "summary": result.summary}

    pool_file = Path(m.pool)
    inputs = {
        # train and targets.crop_size, the model's weights and the data, not where the run lives
        "config": stage_config_hash(config, exclude=("run", "student")),
        "data": data_hashes(config, ("train", "heldout", "val")),  # what dedup reads; not the pool json
        "pool": file_hash(m.pool) if pool_file.is_file() else m.pool,  # a folder: its path only
        "truth": file_hash(m.truth_json) if m.truth_json else None,
    }
    return run_stage("mine", folder, inputs, main_only_action(action), log=log)


def prototypes_stage(
    config: Config, folder: Path, log: Log, checkpoint: str | None = None, after: str = ""
) -> StageOutcome:
    """Eq. 1 prototypes from the backbone's trunk (``model.weights``) or a trained ``checkpoint``."""
    from .prototypes import compute_prototypes

    cfg = with_updates(config, run={"run_dir": str(folder)})

    def action(resume: bool) -> dict[str, Any]:
        return {"prototypes": str(compute_prototypes(cfg, checkpoint, progress=False))}

    return run_stage("prototypes", folder, prototypes_inputs(cfg, checkpoint, after), action, log=log)


def prototypes_inputs(config: Config, checkpoint: str | None, after: str) -> dict[str, Any]:
    """What the prototypes computed from: the data and model settings, Eq. 1's embedding
    (``targets.instance_embedding``, ``crop_size``), the seed of a random-init trunk, and the
    training images (``data.train_json``); the trunk's ``checkpoint`` enters through ``after``
    (the hash of the stage that made it)."""
    return {
        "config": stage_config_hash(config, exclude=("run", "student", "train", "targets")),
        "embedding": config.targets.model_dump(mode="json", include={"instance_embedding", "crop_size"}),
        "train": config.train.model_dump(mode="json", include={"seed", "deterministic", "amp"}),
        "data": data_hashes(config, ("train",)),
        "checkpoint": checkpoint is not None,
        "after": after,
    }


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
            "val_ece": on_main(lambda: val_ece(cfg, folder)),
            "checkpoint": checkpoint,
            "targets": targets,
        }

    return run_stage(name, folder, teacher_inputs(cfg, after), action, log=log)


#: The jsons the teacher reads: it trains on ``train`` and is evaluated on ``val``.
TEACHER_READS = ("train", "val")
#: The jsons the calibration reads besides the teacher: the held-out images, and ``train`` for the
#: categories and the overlap check.
CALIBRATION_READS = ("train", "heldout")


def teacher_inputs(config: Config, after: str = "") -> dict[str, Any]:
    """What a teacher computes from: ``config`` without ``run`` and ``student`` (its result
    settings, ``stage_config_hash``), the bytes of ``TEACHER_READS``, and the stage before it."""
    return {
        "config": stage_config_hash(config, exclude=("run", "student")),
        "data": data_hashes(config, TEACHER_READS),
        "after": after,
    }


def calibrate_stage(config: Config, teacher: StageOutcome, root: Path, log: Log) -> StageOutcome:
    """Δ and ECE of ``teacher`` on ``data.heldout_json``, into ``root/calibration``."""
    from .calibrate import calibrate_teacher

    cfg = with_updates(config, run={"run_dir": str(root)}, student=None)

    def action(resume: bool) -> dict[str, Any]:
        report, out = calibrate_teacher(cfg, teacher.result["checkpoint"])
        ece = {g: report.ece(g) for g in ("all", "r", "c", "f")}
        return {"delta": str(out / "delta.safetensors"), "heldout_ece": ece}

    inputs = {"teacher": teacher.hash, "data": data_hashes(cfg, CALIBRATION_READS)}
    return run_stage("calibrate", root / "calibration", inputs, action, log=log)


#: Pool images the pseudo-label check runs the teacher on (about 30 s on 2 CPU cores at 96 px).
PSEUDO_LABEL_CHECK_IMAGES = 200


def pseudo_label_check_ids(image_ids: Iterable[int]) -> list[int]:
    """The unlabeled images the pseudo-label check measures: ``PSEUDO_LABEL_CHECK_IMAGES`` ids
    spread evenly over the sorted ids (all when fewer), not the first ones (D117)."""
    from .pseudo_label_quality import evenly_spaced

    return evenly_spaced(sorted(image_ids), PSEUDO_LABEL_CHECK_IMAGES)


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
    beside ``data.unlabeled_json`` (only a benchmark knows its pool's truth). Under torchrun rank 0
    measures (``PSEUDO_LABEL_CHECK_IMAGES`` images spread evenly over the unlabeled set, D117) and
    the others wait."""
    assert config.data.unlabeled_json is not None
    truth_file = Path(config.data.unlabeled_json).with_name("unlabeled_truth.json")
    if not truth_file.is_file() or (student.pseudo_labels == "calibrated" and calibration is None):
        return None

    def action(resume: bool) -> dict[str, Any]:
        from ..data.dataset import LvisDataset, Sample
        from ..data.lvis_json import load_lvis
        from ..engine.build import init_run
        from ..io import atomic_write_json
        from .data import load_train_data
        from .delta import load_delta
        from .detector import build_detector, load_detector_weights
        from .pseudo_label_quality import group_index, measure_pseudo_labels
        from .student import class_weights, pseudo_label_config

        _, device = init_run(config.train)
        train = load_train_data(config)
        model = build_detector(config, train).to(device)
        load_detector_weights(model, teacher.result["checkpoint"])
        truth = load_lvis(truth_file, config.data.image_root)
        ids = pseudo_label_check_ids(truth.images)
        pool = LvisDataset(truth, ids)
        samples = (s for s in (pool[k] for k in range(len(pool))) if isinstance(s, Sample))
        delta = None
        if calibration is not None:
            delta = load_delta(calibration.result["delta"], train, student.delta_shrinkage)
        groups = group_index([str(c.get("frequency", "f")) for c in truth.categories])
        counts = measure_pseudo_labels(
            model,
            samples,
            pseudo_label_config(student),
            delta,
            groups,
            device,
            masks=student.unsup_mask_loss,
            class_weights=class_weights(train, student.logit_adjustment),
        )
        payload = {
            "images": counts.images,
            "truth": str(truth_file),
            "image_ids": ids,
            "mode": student.pseudo_labels,
            "box_threshold": pseudo_label_config(student).threshold,  # the τ in use, null resolved
            "threshold_on": student.threshold_on,
            "masks": student.unsup_mask_loss,  # predicted only when the student trains on them (D114)
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
            "delta_shrinkage",
            "support",
            "threshold_on",
            "ignore_threshold",
            "renormalize",
        }
    )
    if student.logit_adjustment:  # only when it acts: earlier checks keep their hashes (D124)
        rule["logit_adjustment"] = student.logit_adjustment
    inputs = {
        "teacher": teacher.hash,
        "calibration": calibration.hash if calibration is not None else None,
        "rule": rule,
        "truth": file_hash(str(truth_file)),
        "images": PSEUDO_LABEL_CHECK_IMAGES,
        "sample": "evenly_spaced",  # D117: was the first images by id
    }
    return run_stage("pseudo_labels", root / "pseudo_labels", inputs, main_only_action(action), log=log)


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
        ece = on_main(lambda: val_ece(cfg, folder))
        return {"metrics": result.metrics, "val_ece": ece, "checkpoint": checkpoint}

    after = [teacher.hash, calibration.hash if calibration is not None else ""]
    return run_stage(name, folder, student_inputs(cfg, after), action, log=log)


def student_reads(student: StudentConfig) -> tuple[str, ...]:
    """The jsons whose bytes a student's result depends on: ``train`` and ``val``, and the unlabeled
    pool unless w = 0. At w = 0 (the control) the pool's batches are drawn, from their own seeded
    streams, but never reach the loss or the teacher, so its weights do not depend on the pool (D86)."""
    return ("train", "val", "unlabeled") if student.unsup_weight > 0 else ("train", "val")


def student_inputs(config: Config, after: Any) -> dict[str, Any]:
    """What a student (or the control) computes from: its resolved config's result settings, the
    bytes of ``student_reads``, and the hashes of its teacher and calibration (``after``)."""
    assert config.student is not None
    inputs = {
        "config": stage_config_hash(config),
        "data": data_hashes(config, student_reads(config.student)),
        "after": after,
    }
    if config.student.box_threshold is None and config.student.unsup_weight > 0:
        from .student import pseudo_label_config

        # null means the mode's default τ, which D121 moved (soft/calibrated 0.3 → 0.5): hash the
        # τ in use, so that a config written with null is not resumed under another threshold.
        inputs["box_threshold"] = pseudo_label_config(config.student).threshold
    return inputs


def control_config(student: StudentConfig) -> StudentConfig:
    """The control of ``student``: the same initialisation (the teacher), schedule and labeled
    batches, no pseudo-labels (w = 0). Only the keys that change its training are kept, so a new
    pseudo-label setting does not retrain it. The keys without effect at w = 0 (no pseudo-label
    reaches a loss) are the model's defaults, except three fixed to the values every control was
    hashed with before D121 moved those defaults, so that the move neither retrains a control nor
    refuses a finished one."""
    return StudentConfig(
        pseudo_labels="onehot",
        unsup_weight=0.0,
        unlabeled_batch_size=student.unlabeled_batch_size,
        max_steps=student.max_steps,
        lr=student.lr,
        warmup_steps=student.warmup_steps,
        support="all",
        unsup_box_loss=True,
        unsup_mask_loss=True,
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


#: The pipeline's stages in order (``run_pipeline(until=…)``, ``tailteacher submit --stage``).
PIPELINE_STAGES = (
    "split",
    "mine",
    "prototypes",
    "teacher",
    "calibrate",
    "control",
    "pseudo_labels",
    "student",
)


def run_pipeline(config: Config, *, log: Log = print, until: str | None = None) -> PipelineResult:
    """Run (or resume) every stage of ``config`` and write ``report.md`` / ``report.json`` and
    ``report.html``; with ``until`` (one of ``PIPELINE_STAGES``), only the stages up to that one
    (those this config has), and no report.

    Under ``torchrun --nproc-per-node N`` every process calls it: the training stages train with
    DDP, prediction is sharded across the ranks, and rank 0 alone decides, writes the records and
    the report and calls ``log`` (``stages.run_stage``); every rank returns the same result."""
    if until is not None and until not in PIPELINE_STAGES:
        raise InputError(f"--stage: expected one of {', '.join(PIPELINE_STAGES)}, got {until!r}")
    dist = init_distributed()  # a no-op for one process
    root = Path(config.run.run_dir)
    if dist.is_main and root.is_dir():
        remove_temporary_files(root)  # a report write killed part-way (each stage cleans its own)
    result = PipelineResult(root)
    cfg = config
    if cfg.data.heldout_json is None:
        split = split_stage(cfg, root / "split", log)
        result.stages.append(split)
        cfg = with_updates(cfg, data=split.result)
    if until == "split":
        return result
    if cfg.mining is not None:
        mined = mine_stage(cfg, root / "mining", log)
        result.stages.append(mined)
        # the stages after it see the mined images as data.unlabeled_json and no mining section
        cfg = with_updates(cfg, data={"unlabeled_json": mined.result["unlabeled_json"]}, mining=None)
    if until == "mine":
        return result
    after = ""
    if cfg.targets.kind == "similarity" and cfg.targets.prototypes is None:
        protos = prototypes_stage(cfg, root / "prototypes", log)
        result.stages.append(protos)
        cfg = with_updates(cfg, targets={"prototypes": protos.result["prototypes"]})
        after = protos.hash
    if until == "prototypes":
        return result
    teacher = teacher_stage(cfg, root / "teacher", log, after=after)
    result.stages.append(teacher)
    if until == "teacher":
        return result
    calibration = calibrate_stage(cfg, teacher, root, log) if cfg.data.heldout_json else None
    if calibration is not None:
        result.stages.append(calibration)
    if until == "calibrate":
        return result
    student_cfg = cfg.student or StudentConfig()
    models = {"teacher": teacher}
    if cfg.data.unlabeled_json is not None:
        control = student_stage(
            cfg, control_config(student_cfg), teacher, None, root / "control", log, name="control"
        )
        result.stages.append(control)
        models[CONTROL] = control
        if until == "control":
            return result
        check = pseudo_label_stage(cfg, student_cfg, teacher, calibration, root, log)
        if check is not None:
            result.stages.append(check)
        if until == "pseudo_labels":
            return result
        student = student_stage(cfg, student_cfg, teacher, calibration, root / "student", log)
        result.stages.append(student)
        models[f"student ({student_cfg.pseudo_labels})"] = student
    elif dist.is_main:
        log("[student] skipped: data.unlabeled_json is not set")
    result.rows = model_rows(models)
    on_main(lambda: _write_reports(root, cfg, models, result.stages, calibration))
    return result


def _write_reports(
    root: Path,
    config: Config,
    models: Mapping[str, StageOutcome],
    stages: list[StageOutcome],
    calibration: StageOutcome | None,
) -> None:
    """``report.md`` / ``report.json``, then ``report.html``, the page a person looks at."""
    from ..report import write_html_report

    write_report(root, config, models, stages, calibration)
    write_html_report(root)
