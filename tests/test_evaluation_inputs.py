"""Bad input is an InputError naming the file, the record and the field; the CLI exits 2."""

import copy
import json
import math

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from tailteacher.cli import main
from tailteacher.errors import InputError
from tailteacher.evaluation import detection_samples, evaluate, load_ground_truth, load_results
from tailteacher.evaluation.rle import check_rle_counts
from tailteacher.evaluation.synthetic import synthetic_lvis_case


@pytest.fixture(scope="module")
def case():
    return synthetic_lvis_case(num_images=4, num_categories=6, gt_per_image=4, dets_per_image=20, seed=11)


def _problems(err: InputError):
    return [(p.record, p.field) for p in err.problems]


def _bad(results, n, **changes):
    results = copy.deepcopy(results)
    results[n].update(changes)
    return results


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"image_id": 99999}, "image_id", "unknown image id 99999"),
        ({"image_id": "100"}, "image_id", "expected an integer image id, got str '100'"),
        ({"category_id": 2}, "category_id", "unknown category id 2"),
        ({"score": math.nan}, "score", "finite"),
        ({"score": "0.5"}, "score", "finite"),
        ({"score": None}, "score", "finite"),
        ({"score": 10**400}, "score", "finite"),  # json has big integers
        ({"bbox": [1, 2, 3]}, "bbox", "[x, y, width, height]"),
        ({"bbox": [1, 2, -3, 4]}, "bbox", "≥ 0"),
        ({"bbox": [1, 2, math.inf, 4]}, "bbox", "finite"),
        ({"bbox": [10**400, 2, 3, 4]}, "bbox", "finite"),
        ({"segmentation": {"size": [10, 10], "counts": "0T2"}}, "segmentation.size", "the image's"),
        ({"segmentation": {"size": [1, 1], "counts": [0, 1]}}, "segmentation.size", "the image's"),
        ({"segmentation": [[0, 0, 5, 0, 5, 5]]}, "segmentation", "expected an RLE"),
        ({"segmentation": None}, "segmentation", "missing"),
    ],
)
def test_bad_record_names_record_and_field(case, changes, field, words):
    gt, results = case
    with pytest.raises(InputError) as err:
        evaluate(gt, _bad(results, 17, **changes), iou_type="segm")
    assert _problems(err.value) == [("results[17]", field)]
    assert words in str(err.value)
    assert "results[17]" in str(err.value)


def test_every_bad_record_is_reported_not_just_the_first(case):
    gt, results = case
    bad = _bad(_bad(results, 3, score=math.nan), 9, image_id=-1)
    with pytest.raises(InputError) as err:
        evaluate(gt, bad)
    assert _problems(err.value) == [("results[3]", "score"), ("results[9]", "image_id")]


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda c: c[:-1] + "Z", "truncated"),  # 'Z' has the continuation bit: ends inside a run
        (lambda c: c[: len(c) // 2], "pixels"),  # pycocotools' IoU loops forever on this one
        (lambda c: "b'" + c + "'", "alphabet"),  # str(bytes) instead of bytes.decode()
        (lambda c: c + "1", "pixels"),
        (lambda c: "", "empty"),
    ],
)
def test_malformed_rle_is_refused_before_pycocotools_sees_it(case, mutate, words):
    gt, results = case
    seg = dict(results[5]["segmentation"])
    seg["counts"] = mutate(seg["counts"])
    with pytest.raises(InputError) as err:
        evaluate(gt, _bad(results, 5, segmentation=seg), iou_type="segm")
    assert _problems(err.value) == [("results[5]", "segmentation.counts")]
    assert words in str(err.value)


def test_bbox_evaluation_does_not_need_masks_when_boxes_are_given(case):
    gt, results = case
    no_masks = copy.deepcopy(results)
    for r in no_masks:
        del r["segmentation"]
    assert evaluate(gt, no_masks, iou_type="bbox").metrics == evaluate(gt, results, iou_type="bbox").metrics
    with pytest.raises(InputError, match="segmentation"):
        evaluate(gt, no_masks, iou_type="segm")


def test_boxes_for_some_records_only_is_refused(case):
    gt, results = case
    partial = copy.deepcopy(results)
    del partial[4]["bbox"]
    with pytest.raises(InputError) as err:
        evaluate(gt, partial, iou_type="bbox")
    assert _problems(err.value) == [("results[4]", "bbox")]


def test_results_must_be_a_list_of_objects(case, tmp_path):
    gt, results = case
    with pytest.raises(InputError, match="expected a list"):
        evaluate(gt, str(_write(tmp_path / "r.json", {"results": results})))
    with pytest.raises(InputError) as err:
        evaluate(gt, [*results[:2], 7])
    assert _problems(err.value) == [("results[2]", "-")]


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_missing_and_invalid_files(case, tmp_path):
    gt, results = case
    with pytest.raises(InputError) as err:
        evaluate(tmp_path / "nope.json", results)
    assert str(tmp_path / "nope.json") in str(err.value) and "no such file" in str(err.value)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"image_id": 1,\n "score": }]')
    with pytest.raises(InputError) as err:
        evaluate(gt, str(broken))
    assert str(broken) in str(err.value) and "line 2" in str(err.value) and "invalid json" in str(err.value)


@pytest.mark.parametrize(
    ("where", "change", "record", "field"),
    [
        ("images", {"neg_category_ids": None}, "image id=100", "neg_category_ids"),
        ("images", {"not_exhaustive_category_ids": [5]}, "image id=100", "not_exhaustive_category_ids"),
        ("images", {"height": 0}, "image id=100", "height"),
        ("categories", {"frequency": "x"}, "category id=1", "frequency"),
        ("annotations", {"category_id": 5}, "annotation id=1", "category_id"),
        ("annotations", {"area": -1}, "annotation id=1", "area"),
        ("annotations", {"bbox": [0, 0, 1]}, "annotation id=1", "bbox"),
    ],
)
def test_bad_ground_truth(case, where, change, record, field):
    gt, _ = case
    gt = copy.deepcopy(gt)
    gt[where][0].update(change)
    with pytest.raises(InputError) as err:
        load_ground_truth(gt)
    assert _problems(err.value) == [(record, field)]


def test_bad_ground_truth_mask_is_refused_whatever_is_evaluated(case):
    # One reader, one rule (D90): a broken mask is a broken file, for boxes too.
    gt, results = case
    gt = copy.deepcopy(gt)
    gt["annotations"][2]["segmentation"] = {"size": [3, 3], "counts": "0"}
    for iou_type in ("segm", "bbox"):
        with pytest.raises(InputError) as err:
            evaluate(gt, results, iou_type=iou_type)
        assert _problems(err.value) == [(f"annotation id={gt['annotations'][2]['id']}", "segmentation.size")]


def test_calibration_needs_scores_that_are_confidences(case):
    gt, results = case
    with pytest.raises(InputError) as err:
        detection_samples(gt, _bad(results, 2, score=1.5))
    assert _problems(err.value) == [("results[2]", "score")] and "[0, 1]" in str(err.value)
    evaluate(gt, _bad(results, 2, score=1.5))  # AP only ranks scores: any finite number


def test_max_dets_must_be_positive(case):
    gt, results = case
    with pytest.raises(ValueError, match="max_dets"):
        load_results(results, load_ground_truth(gt), max_dets=0)


def test_cli_bad_input_exits_2_without_traceback_or_output(case, tmp_path, capsys):
    gt, results = case
    gt_path = _write(tmp_path / "gt.json", gt)
    res_path = _write(tmp_path / "res.json", _bad(results, 17, score=math.nan))
    out = tmp_path / "metrics.json"
    code = main(["evaluate", "--gt", str(gt_path), "--results", str(res_path), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert str(res_path) in err and "results[17]" in err and "score" in err
    assert not out.exists()
    assert set(tmp_path.iterdir()) == {gt_path, res_path}  # nothing written, not even a temp file
    assert main(["evaluate", "--gt", str(tmp_path / "missing.json"), "--results", str(res_path)]) == 2
    assert "no such file" in capsys.readouterr().err


# --- the RLE checks on their own ---------------------------------------------------------


def _encode(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return rle["counts"].decode("ascii")


def test_rle_check_agrees_with_pycocotools_on_valid_masks():
    rng = np.random.default_rng(0)
    masks = [
        np.zeros((7, 5)),
        np.ones((7, 5)),  # first run (background) has length 0
        np.ones((1, 1)),
        rng.random((300, 400)) < 0.5,  # many short runs
        np.pad(np.ones((250, 300)), ((20, 30), (40, 60))),  # long runs: multi-character counts
    ]
    masks += [rng.random((60, 80)) < p for p in (0.01, 0.3, 0.9)]
    counts = [_encode(m) for m in masks]
    heights = np.array([m.shape[0] for m in masks])
    widths = np.array([m.shape[1] for m in masks])
    check = check_rle_counts(counts, heights, widths)
    assert check.problem == [""] * len(masks)
    assert check.area.tolist() == [int(m.sum()) for m in masks]
    # The same strings inside larger batches give the same answers.
    many = check_rle_counts(counts * 50, np.tile(heights, 50), np.tile(widths, 50))
    assert many.area.tolist() == check.area.tolist() * 50


def test_rle_check_names_each_problem_and_keeps_the_good_ones():
    good = _encode(np.pad(np.ones((5, 5)), 2))
    counts = [good, good[:-1], good + "0", "", "Hi!", good]
    check = check_rle_counts(counts, np.full(6, 9), np.full(6, 9))
    assert check.problem[0] == "" and check.problem[5] == ""
    assert check.area.tolist()[0] == 25 and check.area.tolist()[5] == 25
    assert all(check.problem[1:5])
    assert "empty" in check.problem[3]
    assert "'!'" in check.problem[4]
    wrong_size = check_rle_counts([good], np.array([10]), np.array([9]))
    assert "expected height × width = 90" in wrong_size.problem[0]


def _encode_runs(runs):
    """pycocotools' rleToString, for any run lengths (also invalid ones)."""
    out = []
    for i, run in enumerate(runs):
        x = run - runs[i - 2] if i > 2 else run
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr((c | 0x20 if more else c) + 48))
    return "".join(out)


def test_run_encoder_is_pycocotools():
    mask = np.pad(np.ones((300, 200)), ((40, 70), (5, 600)))
    runs = [40 + 5 * 410]  # background down to the first foreground pixel (column-major)
    runs += [300, 110] * 199 + [300, 70 + 600 * 410]
    assert sum(runs) == mask.size
    assert _encode_runs(runs) == _encode(mask)


@pytest.mark.parametrize(
    ("runs", "words"),
    [
        ([5, 3, -2, 4], "negative"),  # adds up to h·w = 10, but pycocotools reads −2 as 2**32 − 2
        ([4, 3, 5, -2], "negative"),
        ([5, 3, 2, 4], "14 pixels"),
        ([5, 3], "8 pixels"),
        ([10**11, 1], "too large"),  # more characters than any count of an image can need
    ],
)
def test_rle_check_refuses_runs_that_do_not_tile_the_image(runs, words):
    check = check_rle_counts([_encode_runs(runs)], np.array([2]), np.array([5]))
    assert words in check.problem[0]
    assert check.area.tolist() == [0]


def test_rle_check_decodes_long_and_zero_runs():
    runs = [0, 70000, 0, 1, 29999, 0]  # zero-length runs, multi-character counts, deltas of both signs
    counts = _encode_runs(runs)
    check = check_rle_counts([counts], np.array([400]), np.array([250]))
    assert check.problem == [""]
    assert check.area.tolist() == [70001] == [mask_utils.area({"size": [400, 250], "counts": counts})]


@pytest.mark.parametrize(
    "segmentation",
    [
        [[0, 0, 5, "x", 5, 5]],
        [[0, 0, 5]],
        [],
        [[0, 0, math.nan, 0, 5, 5]],
        {"size": [1, 1], "counts": [1, 1]},
    ],
)
def test_bad_ground_truth_polygons_and_rles(case, segmentation):
    gt, results = case
    gt = copy.deepcopy(gt)
    gt["annotations"][0]["segmentation"] = segmentation
    with pytest.raises(InputError) as err:
        evaluate(gt, results, iou_type="segm")
    assert [p.record for p in err.value.problems] == ["annotation id=1"]


def test_uncompressed_rle_gives_the_compressed_forms_ap(case):
    """pycocotools and lvis-api accept ``counts`` as a list of run lengths; so do we, with equal AP."""
    gt, results = case
    plain = copy.deepcopy(results)
    for r in plain:
        seg = r["segmentation"]
        rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
        mask = mask_utils.decode(rle)
        runs, previous, flat = [], 0, mask.flatten(order="F")
        boundaries = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])) != 0)  # run starts, then end
        for b in boundaries:
            runs.append(int(b - previous))
            previous = b
        runs = runs[:-1] if runs and runs[-1] == 0 else runs
        assert sum(runs) == mask.size
        r["segmentation"] = {"size": seg["size"], "counts": runs}
    assert evaluate(gt, plain, iou_type="segm").metrics == evaluate(gt, results, iou_type="segm").metrics
    broken = copy.deepcopy(plain)
    broken[3]["segmentation"]["counts"] = [1, 2, 3]
    with pytest.raises(InputError) as err:
        evaluate(gt, broken, iou_type="segm")
    assert _problems(err.value) == [("results[3]", "segmentation.counts")]
    assert "add up to 6" in str(err.value)
