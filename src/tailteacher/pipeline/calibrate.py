"""Stage "calibrate" (Eq. 4): the teacher's detections on the held-out labeled images it never
trained on, matched at IoU ≥ 0.5, give Δ per class, the ECE and the reliability diagrams.

The confidences are the detections' ``scores`` — the stage-averaged class score that
``class_scores`` carries too — i.e. exactly the numbers that become soft pseudo-labels.
Writes into ``run.run_dir/calibration/``: heldout_results.json, calibration.json,
delta.safetensors (Δ [C] in class order, for Eq. 5) and reliability_{all,r,c,f}.png.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..data.lvis_json import load_lvis
from ..engine import init_run
from ..engine.main_rank import on_main
from ..errors import InputError
from ..evaluation.detection_calibration import CalibrationReport
from ..evaluation.report import write_calibration
from ..io import atomic_write_json
from .data import load_train_data
from .detector import build_detector, load_detector_weights
from .prediction import predict_sharded


def calibrate_teacher(config: Config, checkpoint: str | None = None) -> tuple[CalibrationReport, Path]:
    """Δ, ECE and diagrams of the teacher (``checkpoint``, default the run's model_final).

    Under torchrun every rank calls it: the ranks share the held-out images' prediction
    (``predict_sharded``), rank 0 writes the files, and every rank returns the same report."""
    if config.data.heldout_json is None:
        raise InputError(
            "data.heldout_json: the calibration needs held-out labeled images (`tailteacher split`)"
        )
    _, device = init_run(config.train)
    run_dir = Path(config.run.run_dir)
    weights = Path(checkpoint) if checkpoint else run_dir / "model_final.safetensors"
    train = load_train_data(config)
    heldout = load_lvis(config.data.heldout_json, config.data.image_root)
    if heldout.category_ids != train.category_ids:
        raise InputError(
            f"data.heldout_json: {heldout.path} has other categories than {config.data.train_json}"
        )
    overlap = set(heldout.images) & set(train.images)
    if overlap:
        raise InputError(
            f"data.heldout_json: {len(overlap)} images are also in data.train_json (e.g. id "
            f"{min(overlap)}); the teacher must not have trained on the images it is calibrated on"
        )
    model = build_detector(config, train)
    load_detector_weights(model, weights)
    gathered = predict_sharded(model.to(device), heldout, device=device, progress=True)
    out = run_dir / "calibration"
    heldout_json = config.data.heldout_json

    def write() -> CalibrationReport:
        assert gathered is not None  # rank 0 holds every rank's batches
        results, _ = gathered
        atomic_write_json(out / "heldout_results.json", results)
        return write_calibration(heldout_json, results, out, "segm", max_dets=300)

    return on_main(write), out
