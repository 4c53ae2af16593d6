"""The label-fraction protocol (D107): exact choices on tiny inputs, and `synth --labeled-fraction`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tailteacher.cli import main
from tailteacher.data import synth
from tailteacher.data.label_fraction import labeled_subset, split_labeled
from tailteacher.errors import InputError


def _image(i: int) -> dict:
    return {
        "id": i,
        "file_name": f"{i}.png",
        "width": 8,
        "height": 8,
        "neg_category_ids": [3],
        "not_exhaustive_category_ids": [4],
    }


def test_labeled_subset_is_the_seeded_permutation_of_sorted_ids():
    ids = [40, 10, 30, 20]
    order = np.random.default_rng(5).permutation(4)  # over [10, 20, 30, 40]
    assert labeled_subset(ids, 0.5, 5) == {[10, 20, 30, 40][i] for i in order[:2]}
    assert labeled_subset(ids, 0.5, 5) == labeled_subset(list(reversed(ids)), 0.5, 5)
    assert labeled_subset(ids, 0.01, 0) != set() and len(labeled_subset(ids, 0.01, 0)) == 1
    assert labeled_subset(ids, 1.0, 0) == set(ids)
    assert len(labeled_subset(list(range(10)), 0.25, 3)) == 2  # round(2.5) = 2 (banker's)


def test_every_class_keeps_a_labeled_image_at_the_same_count():
    # Six images; class 7 is only in image 6, class 8 only in images 4 and 5, class 1 everywhere.
    classes_of = {1: {1}, 2: {1}, 3: {1}, 4: {1, 8}, 5: {1, 8}, 6: {1, 7}}
    ids = list(classes_of)
    assert [ids[i] for i in np.random.default_rng(4).permutation(6)] == [2, 3, 1, 6, 5, 4]
    assert labeled_subset(ids, 0.5, 4) == {1, 2, 3}  # the plain rule: classes 7 and 8 unlabeled
    # Class 7 (one image) first: image 6 joins, image 1 (last chosen, class 1 still covered)
    # leaves; then class 8: its first image in the permutation, 5, joins and 3 leaves.
    assert labeled_subset(ids, 0.5, 4, classes_of) == {2, 5, 6}


def test_coverage_grows_the_subset_only_when_nothing_can_leave():
    # One labeled image allowed, two classes each in their own image: both must be labeled.
    assert labeled_subset([1, 2], 0.5, 0, {1: {10}, 2: {20}}) == {1, 2}


def test_split_moves_images_strips_labels_and_keeps_their_truth():
    train = {
        "images": [_image(i) for i in (1, 2, 3, 4)],
        "annotations": [{"id": 10 + i, "image_id": i, "category_id": 1} for i in (1, 2, 3, 4)],
        "categories": [{"id": 1, "frequency": "r"}],
    }
    pool = {
        "images": [_image(9) | {"neg_category_ids": [], "not_exhaustive_category_ids": []}],
        "annotations": [],
        "categories": [],
    }
    truth = {
        "images": pool["images"],
        "annotations": [{"id": 99, "image_id": 9, "category_id": 1}],
        "categories": [],
    }
    keep = labeled_subset([1, 2, 3, 4], 0.5, 0)
    part = split_labeled(train, pool, truth, 0.5, 0)
    assert {im["id"] for im in part.train["images"]} == keep
    assert {a["image_id"] for a in part.train["annotations"]} == keep
    assert part.train["categories"] == train["categories"]  # groups of the full set
    moved = sorted({1, 2, 3, 4} - keep)
    assert [im["id"] for im in part.unlabeled["images"]] == [*moved, 9]
    assert part.unlabeled["annotations"] == []
    assert all(
        im["neg_category_ids"] == [] == im["not_exhaustive_category_ids"] for im in part.unlabeled["images"]
    )
    assert [a["id"] for a in part.truth["annotations"]] == [10 + i for i in moved] + [99]
    assert len(train["images"]) == 4 and train["images"][0]["neg_category_ids"] == [3]  # inputs kept
    assert [im["not_exhaustive_category_ids"] for im in part.truth["images"]] == [[4], [4], []]
    hidden = [{"id": 50 + i, "image_id": i, "category_id": 4} for i in (1, 2, 3, 4)]
    full = split_labeled(train, pool, truth, 0.5, 0, unannotated=hidden)
    assert [a["id"] for a in full.truth["annotations"]] == [10 + i for i in moved] + [
        50 + i for i in moved
    ] + [99]
    assert [im["not_exhaustive_category_ids"] for im in full.truth["images"]] == [[], [], []]
    assert [im["neg_category_ids"] for im in full.truth["images"]] == [[3], [3], []]


def test_split_refuses_bad_fraction_and_clashing_ids():
    train = {"images": [_image(1)], "annotations": []}
    with pytest.raises(InputError, match="labeled_fraction"):
        split_labeled(train, {"images": [], "annotations": []}, {"images": [], "annotations": []}, 0.0, 0)
    with pytest.raises(InputError, match="seed"):
        labeled_subset([1], 0.5, -1)
    two = {"images": [_image(1), _image(2)], "annotations": []}
    with pytest.raises(InputError, match="ids in both"):
        split_labeled(
            two,
            {"images": [_image(1), _image(2)], "annotations": []},
            {"images": [], "annotations": []},
            0.5,
            0,
        )


def test_synth_with_a_labeled_fraction_partitions_the_training_images(tmp_path):
    full = synth.generate("tiny", 0, tmp_path / "full")
    part = synth.generate("tiny", 0, tmp_path / "part", labeled_fraction=0.25)
    load = lambda d, n: json.loads((tmp_path / d / n).read_text())  # noqa: E731
    f_train, p_train = load("full", "train.json"), load("part", "train.json")
    p_pool, p_truth = load("part", "unlabeled.json"), load("part", "unlabeled_truth.json")
    f_pool = load("full", "unlabeled.json")
    assert part.images["train"] == len(p_train["images"]) == round(0.25 * full.images["train"])
    kept = {im["id"] for im in p_train["images"]}
    classes_of: dict[int, set[int]] = {}
    for a in f_train["annotations"]:
        classes_of.setdefault(a["image_id"], set()).add(a["category_id"])
    assert kept == labeled_subset([im["id"] for im in f_train["images"]], 0.25, 0, classes_of)
    # Every class of the full set keeps a labeled image (D116).
    assert {a["category_id"] for a in p_train["annotations"]} == set().union(*classes_of.values())
    assert p_train["annotations"] == [a for a in f_train["annotations"] if a["image_id"] in kept]
    assert p_train["categories"] == f_train["categories"]
    assert p_train["info"]["labeled_fraction"] == 0.25
    moved = [im["id"] for im in f_train["images"] if im["id"] not in kept]
    assert [im["id"] for im in p_pool["images"]] == moved + [im["id"] for im in f_pool["images"]]
    assert p_pool["annotations"] == []
    assert [im["id"] for im in p_truth["images"]] == [im["id"] for im in p_pool["images"]]
    f_truth = load("full", "unlabeled_truth.json")
    pool_ids = {im["id"] for im in f_pool["images"]}
    assert [a for a in p_truth["annotations"] if a["image_id"] in pool_ids] == f_truth["annotations"]
    # moved images: their annotations, then their unannotated instances with new ids after all others
    moved_set = set(moved)
    given = [a for a in f_train["annotations"] if a["image_id"] in moved_set]
    in_truth = [a for a in p_truth["annotations"] if a["image_id"] in moved_set]
    assert in_truth[: len(given)] == given
    extra = in_truth[len(given) :]
    last_id = max(a["id"] for d in (f_train, f_truth, load("full", "val.json")) for a in d["annotations"])
    assert extra and min(a["id"] for a in extra) == last_id + 1
    record = {im["id"]: im for im in f_train["images"]}
    for im in p_truth["images"][: len(moved)]:
        assert im["neg_category_ids"] == record[im["id"]]["neg_category_ids"]
        assert im["not_exhaustive_category_ids"] == []
        for cid in record[im["id"]]["not_exhaustive_category_ids"]:  # now complete
            assert any(a["image_id"] == im["id"] and a["category_id"] == cid for a in extra)
    assert (tmp_path / "part" / "val.json").read_bytes() == (tmp_path / "full" / "val.json").read_bytes()
    # every moved image is still on disk where its record points
    assert all((tmp_path / "part" / "images" / im["file_name"]).is_file() for im in p_pool["images"])


def test_cli_labeled_fraction_and_its_bad_value(tmp_path, capsys):
    assert main(["synth", "--preset", "tiny", "--labeled-fraction", "0.5", "--out", str(tmp_path / "a")]) == 0
    assert "train: 80 images" in capsys.readouterr().out
    assert main(["synth", "--preset", "tiny", "--labeled-fraction", "1.5", "--out", str(tmp_path / "b")]) == 2
    assert "--labeled-fraction" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
