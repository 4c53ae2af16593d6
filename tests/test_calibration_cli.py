"""`tailteacher calibration`: calibration.json and the reliability diagrams, or exit 2."""

import json
import math

import pytest
from PIL import Image

from tailteacher.cli import main
from tailteacher.evaluation.plots import RELIABILITY_SIZE
from test_evaluation_lvis import hand_case

FILES = {
    "calibration.json",
    "reliability_all.png",
    "reliability_r.png",
    "reliability_c.png",
    "reliability_f.png",
    "delta.safetensors",
}


def _write(tmp_path, gt, results):
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps(gt))
    res_path.write_text(json.dumps(results))
    return gt_path, res_path


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_writes_json_and_diagrams(tmp_path, capsys, iou_type):
    gt_path, res_path = _write(tmp_path, *hand_case())
    out = tmp_path / "calib"
    args = ["calibration", "--gt", str(gt_path), "--results", str(res_path), "--out", str(out)]
    assert main([*args, "--iou-type", iou_type, "--num-bins", "10"]) == 0
    assert {p.name for p in out.iterdir()} == FILES
    data = json.loads((out / "calibration.json").read_text())
    assert data["iou_type"] == iou_type and data["iou_threshold"] == 0.5 and data["num_bins"] == 10
    assert data["delta"] == pytest.approx({"1": -0.0125, "2": -0.5, "3": -0.3})
    assert data["ece"] == pytest.approx({"all": 0.375, "r": 0.5, "c": 0.3, "f": 0.3625})
    assert data["num_detections"] == {"all": 6, "r": 1, "c": 1, "f": 4}
    assert [c["id"] for c in data["categories"]] == [1, 2, 3]
    # Δ for Eq. 5 as a tensor in class order (categories sorted by id), the same numbers.
    from safetensors.torch import load_file

    tensors = load_file(str(out / "delta.safetensors"))
    assert tensors["delta"].tolist() == pytest.approx([-0.0125, -0.5, -0.3])
    # and the held-out detections behind each Δ_c, for the shrinkage of D100
    assert tensors["count"].tolist() == [c["num_detections"] for c in data["categories"]]
    assert sum(tensors["count"].tolist()) == 6
    for name in FILES - {"calibration.json", "delta.safetensors"}:
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size == RELIABILITY_SIZE
    printed = capsys.readouterr().out
    assert "0.3750" in printed


def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    gt, results = hand_case()
    results[4]["score"] = math.nan
    gt_path, res_path = _write(tmp_path, gt, results)
    out = tmp_path / "calib"
    code = main(["calibration", "--gt", str(gt_path), "--results", str(res_path), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "results[4]" in err and "score" in err
    assert not out.exists()


def test_scores_above_one_are_refused(tmp_path, capsys):
    gt, results = hand_case()
    results[0]["score"] = 3.2  # a logit, not a confidence
    gt_path, res_path = _write(tmp_path, gt, results)
    code = main(
        ["calibration", "--gt", str(gt_path), "--results", str(res_path), "--out", str(tmp_path / "c")]
    )
    assert code == 2 and "[0, 1]" in capsys.readouterr().err


def test_out_must_be_a_folder(tmp_path, capsys):
    gt_path, res_path = _write(tmp_path, *hand_case())
    code = main(["calibration", "--gt", str(gt_path), "--results", str(res_path), "--out", str(gt_path)])
    assert code == 2 and "not a folder" in capsys.readouterr().err
