"""`tailteacher evaluate`: the table, metrics json and the AP-vs-frequency figure."""

import json

import pytest
from PIL import Image

from tailteacher.cli import main
from tailteacher.evaluation.plots import FREQUENCY_PLOT_SIZE
from test_evaluation_lvis import hand_case


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_evaluate_writes_metrics_and_plot(tmp_path, capsys, iou_type):
    gt, results = hand_case()
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "res.json"
    gt_path.write_text(json.dumps(gt))
    res_path.write_text(json.dumps(results))
    out, plot = tmp_path / "m" / "metrics.json", tmp_path / "fig4.png"
    args = ["evaluate", "--gt", str(gt_path), "--results", str(res_path), "--iou-type", iou_type]
    assert main([*args, "--out", str(out), "--plot", str(plot), "--per-class"]) == 0
    data = json.loads(out.read_text())
    ap_a = (34 + 67 * 0.75) / 101
    assert data["iou_type"] == iou_type and data["max_dets"] == 300
    assert data["metrics"]["AP"] == pytest.approx(ap_a / 2)
    assert data["metrics"]["APr"] == -1.0
    assert [c["AP"] for c in data["per_category"]] == pytest.approx([ap_a, None, 0.0])
    with Image.open(plot) as im:
        assert im.size == FREQUENCY_PLOT_SIZE
    printed = capsys.readouterr().out
    assert f"{100 * ap_a / 2:5.1f}" in printed  # the table, in %
    assert sorted(p.name for p in out.parent.iterdir()) == ["metrics.json"]  # no temp file left


def test_max_dets_must_be_positive(tmp_path, capsys):
    assert main(["evaluate", "--gt", "x.json", "--results", "y.json", "--max-dets", "0"]) == 2
    assert "--max-dets" in capsys.readouterr().err


def test_an_unwritable_plot_path_stops_before_anything_is_written(tmp_path, capsys):
    gt, results = hand_case()
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "res.json"
    gt_path.write_text(json.dumps(gt))
    res_path.write_text(json.dumps(results))
    out = tmp_path / "metrics.json"
    args = [
        "evaluate",
        "--gt",
        str(gt_path),
        "--results",
        str(res_path),
        "--out",
        str(out),
        "--plot",
        str(tmp_path),
    ]
    assert main(args) == 2
    assert "--plot" in capsys.readouterr().err and not out.exists()
