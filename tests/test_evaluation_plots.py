"""The figures are written as PNG files of the expected size."""

import pytest
from PIL import Image

from tailteacher.evaluation import calibration_report, detection_samples, evaluate, load_ground_truth
from tailteacher.evaluation.plots import (
    FREQUENCY_PLOT_SIZE,
    RELIABILITY_SIZE,
    plot_ap_vs_frequency,
    plot_reliability,
)
from tailteacher.evaluation.synthetic import synthetic_lvis_case


@pytest.fixture(scope="module")
def case():
    gt, results = synthetic_lvis_case(num_images=6, num_categories=12, dets_per_image=40, seed=8)
    return load_ground_truth(gt), results


def _png(path, size):
    assert path.stat().st_size > 1000
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        assert im.size == size


def test_reliability_diagram(case, tmp_path):
    gt, results = case
    report = calibration_report(gt, detection_samples(gt, results, iou_type="bbox"))
    path = tmp_path / "sub" / "reliability.png"
    plot_reliability(report.reliability(), path, title="bbox", ece=report.ece())
    _png(path, RELIABILITY_SIZE)
    assert [p.name for p in path.parent.iterdir()] == ["reliability.png"]  # no temp file left


def test_ap_against_frequency(case, tmp_path):
    gt, results = case
    per_category = evaluate(gt, results, iou_type="segm").per_category
    for key in ("instance_count", "image_count"):
        path = tmp_path / f"ap_{key}.png"
        n = plot_ap_vs_frequency(per_category, path, frequency_key=key)
        assert n == sum(c["AP"] is not None for c in per_category) > 0
        _png(path, FREQUENCY_PLOT_SIZE)


def test_ap_against_frequency_without_anything_to_plot(tmp_path):
    path = tmp_path / "empty.png"
    assert plot_ap_vs_frequency([], path) == 0
    _png(path, FREQUENCY_PLOT_SIZE)
