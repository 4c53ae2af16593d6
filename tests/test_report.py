"""The HTML report: its pure parts on tiny inputs, then the page of a real tiny run (and an
ablation folder made of it), checked in headless Chromium when it is installed."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from report_browser import check_page, find_chromium, screenshot
from tailteacher.cli import main
from tailteacher.data.synth import generate
from tailteacher.report.ablation import fraction_curves, split_key
from tailteacher.report.examples import box_iou_xywh, choose_examples, found_score
from tailteacher.report.per_class import per_class_rows
from test_pipeline_run import overrides

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def test_per_class_rows_rarest_first_with_gain_and_ccece():
    teacher = [
        {"id": 1, "name": "a", "frequency": "f", "instance_count": 100, "AP": 0.5},
        {"id": 2, "name": "b", "frequency": "r", "instance_count": 3, "AP": 0.25},
        {"id": 3, "name": "c", "frequency": "c", "instance_count": 20, "AP": None},
    ]
    student = [{"id": 1, "AP": 0.75}, {"id": 2, "AP": 0.0}, {"id": 3, "AP": None}]
    rows = per_class_rows(teacher, student, {1: 0.125, 2: -0.5})
    assert [r["name"] for r in rows] == ["b", "c", "a"]
    assert [r["ccece"] for r in rows] == [-0.5, None, 0.125]
    assert [(r["ap_teacher"], r["ap_student"], r["gain"]) for r in rows] == [
        (25.0, 0.0, -25.0),
        (None, None, None),
        (50.0, 75.0, 25.0),
    ]
    assert per_class_rows(teacher)[0]["ap_student"] is None  # no student: no column values


def test_box_iou_and_found_score():
    assert box_iou_xywh([0, 0, 2, 2], np.array([[1, 0, 2, 2], [5, 5, 1, 1]], dtype=float)).tolist() == [
        pytest.approx(2 / 6),
        0.0,
    ]
    obj = {"category_id": 7, "bbox": [0, 0, 10, 10]}
    dets = [
        {"category_id": 7, "bbox": [0, 0, 10, 10], "score": 0.4},
        {"category_id": 7, "bbox": [1, 0, 10, 10], "score": 0.6},  # IoU 90/110 ≥ 0.5
        {"category_id": 8, "bbox": [0, 0, 10, 10], "score": 0.9},  # other class
        {"category_id": 7, "bbox": [6, 0, 10, 10], "score": 0.95},  # IoU 40/160 < 0.5
    ]
    assert found_score(obj, dets) == 0.6
    assert found_score(obj, []) == 0.0


def test_choose_examples_largest_difference_first():
    anns = [
        {"id": 1, "image_id": 10, "category_id": 3, "bbox": [0, 0, 10, 10]},
        {"id": 2, "image_id": 11, "category_id": 3, "bbox": [0, 0, 10, 10]},
        {"id": 3, "image_id": 11, "category_id": 3, "bbox": [20, 20, 10, 10]},
        {"id": 4, "image_id": 12, "category_id": 1, "bbox": [0, 0, 10, 10]},  # not rare
    ]
    teacher = [{"image_id": 10, "category_id": 3, "bbox": [0, 0, 10, 10], "score": 0.5}]
    student = [
        {"image_id": 10, "category_id": 3, "bbox": [0, 0, 10, 10], "score": 0.6},
        {"image_id": 11, "category_id": 3, "bbox": [0, 0, 10, 10], "score": 0.3},
        {"image_id": 11, "category_id": 3, "bbox": [20, 20, 10, 10], "score": 0.2},
        {"image_id": 12, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
    ]
    chosen = choose_examples(anns, {3}, teacher, student, count=5)
    assert [e.image_id for e in chosen] == [11, 10]
    assert chosen[0].difference == pytest.approx(0.5) and chosen[1].difference == pytest.approx(0.1)
    assert chosen[0].found == {2: (0.0, 0.3), 3: (0.0, 0.2)}
    assert [e.image_id for e in choose_examples(anns, {3}, teacher, student, count=1)] == [11]


def test_fraction_curves_keep_rows_run_below_full_labels():
    summary = {
        "onehot@1": {"AP": [10.0, 1.0]},
        "onehot@0.5": {"AP": [6.0, None]},
        "uniform@1": {"AP": [11.0, None]},
    }
    assert split_key("sim_g15@0.25") == ("sim_g15", 0.25)
    assert fraction_curves(summary) == {"onehot": {1.0: {"AP": [10.0, 1.0]}, 0.5: {"AP": [6.0, None]}}}


# -- the page of a real tiny run ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("tiny")
    generate("tiny", 0, data)
    run = tmp_path_factory.mktemp("report") / "run"
    assert main(["run", "demo", *overrides(data, run), "--set=targets.kind=similarity"]) == 0
    return run


def _self_contained(html: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # no network, no CDN
    assert "<script src" not in html and "<link" not in html
    assert 'src="data:image/png;base64,' in html


def test_run_writes_a_self_contained_page(tiny_run, capsys):
    page = tiny_run / "report.html"
    html = page.read_text(encoding="utf-8")
    _self_contained(html)
    for section in ("Teacher, control and student", "Fig. 3", "Fig. 4", "Fig. 2", "Fig. 5", "Pseudo-labels"):
        assert section in html
    assert "student (calibrated)" in html and "student − control" in html
    assert html.count('id="per-class-table"') == 1 and html.count("<tr><td>") >= 12  # tiny: 12 classes
    assert "A single run has no label-fraction curves" in html  # said, not drawn
    assert "resolved configuration" in html.lower() and "targets:" in html
    assert (tiny_run / "report.md").is_file() and (tiny_run / "report.json").is_file()  # still written

    out = tiny_run / "again.html"
    assert main(["report", str(tiny_run), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {out}"
    assert out.read_text(encoding="utf-8").count("<img") == html.count("<img")


def test_report_of_a_folder_that_is_no_run_is_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "not a finished run folder" in err and "Traceback" not in err
    assert main(["report", str(tmp_path / "absent")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_ablation_folder_page(tiny_run, tmp_path):
    full = tmp_path / "ablation" / "seed0" / "full"
    shutil.copytree(tiny_run / "student", full / "student_calibrated_topk")
    shutil.copytree(tiny_run / "control", full / "student_labeled")
    summary = {
        "onehot@1": {"AP": [10.0, 1.0], "APr": [2.0, 0.5], "APc": [1, 0], "APf": [1, 0], "ECE": [0.1, 0.01]},
        "onehot@0.5": {"AP": [6.0, 0.5], "APr": [1.0, 0.2], "APc": [1, 0], "APf": [1, 0], "ECE": [0.1, 0.0]},
    }
    paired = {"student_calibrated@1": {m: [0.5, 0.1] for m in ("AP", "APr", "APc", "APf", "ECE")}}
    entry = {"mean": 1.25, "std": None, "per_seed": {"0": 1.25}}
    comparisons = {
        "student soft − control": {"row": "student_soft", "reference": "student_labeled", "AP": entry}
    }
    payload = {"meta": {"seeds": [0]}, "summary": summary, "paired_with_control": paired}
    (tmp_path / "ablation" / "ablation.json").write_text(json.dumps({**payload, "comparisons": comparisons}))
    assert main(["report", str(tmp_path / "ablation")]) == 0
    html = (tmp_path / "ablation" / "report.html").read_text(encoding="utf-8")
    _self_contained(html)
    assert "10.0 ± 1.0" in html and "0.50 ± 0.10" not in html and "0.5 ± 0.1" in html
    assert 'alt="AP and APr against the fraction of labels"' in html  # Fig. 2 drawn
    assert "seed 0" in html and "student (calibrated)" in html  # Figs. 3–5 of the seed's student
    assert "Paired comparisons, seed by seed" in html and "AP (seed 0)" in html
    assert '<td>student soft − control</td><td class="num">+1.2</td>' in html  # 1.25 → +1.2


def test_page_in_headless_chromium(tiny_run, tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(
            "headless Chromium not found (chromium, chromium-browser, google-chrome): "
            "`apt-get install chromium` to run the browser check of report.html"
        )
    page = tiny_run / "report.html"
    result = check_page(chromium, page, tmp_path)
    assert result["images"] >= 10  # 8 reliability diagrams, 2 AP-vs-frequency plots, Fig. 5
    assert result["undecoded"] == []
    assert result["errors"] == [] and result["console"] == []
    shot = screenshot(chromium, page, ARTIFACTS / "report.png")
    assert shot.stat().st_size > 10_000
    shutil.copy(shot, tmp_path / "report.png")


def test_browser_probe_sees_errors_and_broken_images(tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("headless Chromium not found: the probe cannot be checked")
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><title>x</title></head><body><img alt="gone" src="missing.png">'
        "<script>notAFunction();</script></body></html>"
    )
    result = check_page(chromium, page, tmp_path)
    assert result["undecoded"] == ["gone"]
    assert any("notAFunction" in e for e in result["errors"])
