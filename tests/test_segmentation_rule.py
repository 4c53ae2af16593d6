"""One segmentation rule for every reader: what crashed or exhausted memory is refused, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from lvis_factory import mutated, tiny_lvis, write
from tailteacher.cli import main
from tailteacher.data.segmentation import segmentation_problem

TWO_POINTS = [[4.0, 13.0, 21.0, 30.0]]  # four numbers: pycocotools reads it as a box, then raises
FAR_OUT = [[-164.1, -221.8, 2.085e8, 3.52e8, 225.9, 236.5, 272.0, 384.2]]  # ~23 GB to rasterise


@pytest.mark.parametrize(
    ("seg", "field", "words"),
    [
        (TWO_POINTS, "segmentation", "≥ 3 points"),
        (FAR_OUT, "segmentation", "outside the 64×64 image"),
        ([[0, 0, 10, 0, 10, float("nan")]], "segmentation", "finite"),
        ([], "segmentation", "at least one polygon"),
        ({"size": [32, 64], "counts": "0T2"}, "segmentation.size", "[64, 64]"),
        ({"size": [64, 64], "counts": [1, 2, 3]}, "segmentation.counts", "4096"),
        ({"size": [64, 64], "counts": 7}, "segmentation.counts", "run lengths"),
        ("polygon", "segmentation", "got str"),
    ],
)
def test_the_rule_names_field_and_problem(seg, field, words):
    why = segmentation_problem(seg, 64, 64)
    assert why is not None and why[0] == field and words in why[1], why


def test_the_rule_accepts_what_labelling_tools_write():
    assert segmentation_problem([[-0.5, -0.5, 64.5, 0, 64.5, 64.5]], 64, 64) is None  # a little outside
    assert segmentation_problem([[-60, 0, 120, 0, 120, 120]], 64, 64) is None  # within one image size
    mask = np.zeros((64, 64), dtype=np.uint8, order="F")
    mask[3:9, 5:20] = 1
    rle = mask_utils.encode(mask)
    assert segmentation_problem({"size": [64, 64], "counts": rle["counts"].decode()}, 64, 64) is None
    assert segmentation_problem({"size": [64, 64], "counts": [100, 20, 3976]}, 64, 64) is None


def _files(tmp_path, seg):
    def square(d):
        for img in d["images"]:
            img.update(width=64, height=64)
        d["annotations"][1]["segmentation"] = seg

    gt = write(tmp_path, mutated(tiny_lvis(), square))
    mask = np.zeros((64, 64), dtype=np.uint8, order="F")
    mask[3:11, 2:10] = 1
    counts = mask_utils.encode(mask)["counts"].decode()
    det = {"image_id": 1, "category_id": 10, "score": 0.9, "bbox": [2, 3, 8, 8]}
    det["segmentation"] = {"size": [64, 64], "counts": counts}
    results = tmp_path / "results.json"
    results.write_text(json.dumps([det]))
    return gt, results


@pytest.mark.parametrize("seg", [TWO_POINTS, FAR_OUT], ids=["two_points", "far_out"])
def test_every_command_that_reads_it_refuses_it(tmp_path, capsys, seg):
    gt, results = _files(tmp_path, seg)
    commands = [
        ["evaluate", "--gt", str(gt), "--results", str(results), "--iou-type", "segm"],
        ["calibration", "--gt", str(gt), "--results", str(results), "--out", str(tmp_path / "cal")],
        ["split", "--train", str(gt), "--out", str(tmp_path / "split")],
    ]
    for argv in commands:
        assert main(argv) == 2, argv[0]
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert str(gt) in err and "annotation id=2" in err and "segmentation" in err, (argv[0], err)
    assert not (tmp_path / "cal").exists() and not (tmp_path / "split").exists()
