import json
import math
from collections import Counter

import pytest
import torch

from lvis_factory import tiny_lvis, write
from tailteacher.cli import main
from tailteacher.data.frequency import frequency_groups, group_of, image_counts
from tailteacher.data.lvis_json import load_lvis
from tailteacher.data.sampling import RepeatFactorSampler, repeat_factors
from tailteacher.data.split import split_heldout


def long_tailed(num_images=200):
    """Category 10 in every image; 20 in every 10th; 30 in images 3 and 7 only (2 images)."""
    d = tiny_lvis(num_images)
    anns = []
    for img in d["images"]:
        iid = img["id"]
        cids = [10] + ([20] if iid % 10 == 0 else []) + ([30] if iid in (3, 7) else [])
        for k, cid in enumerate(cids):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": iid,
                    "category_id": cid,
                    "bbox": [k * 12 + 1, 1, 8, 8],
                    "area": 64,
                    "segmentation": [[k * 12 + 1, 1, k * 12 + 9, 1, k * 12 + 9, 9, k * 12 + 1, 9]],
                    "iscrowd": 0,
                }
            )
    d["annotations"] = anns
    for c in d["categories"]:
        c.pop("frequency")
    return d


def test_groups_follow_the_lvis_rule():
    assert [group_of(n) for n in (0, 1, 10, 11, 100, 101)] == ["r", "r", "r", "c", "c", "f"]


def test_groups_from_file_or_computed(tmp_path):
    data = load_lvis(write(tmp_path, long_tailed(), with_images=False))
    assert image_counts(data) == {10: 200, 20: 20, 30: 2}
    assert frequency_groups(data) == {10: "f", 20: "c", 30: "r"}  # computed: no frequency field
    data = load_lvis(write(tmp_path, tiny_lvis(), with_images=False))
    assert frequency_groups(data) == {10: "f", 20: "c", 30: "r"}  # from the file


def test_split_is_deterministic_and_keeps_rare_classes_in_both_parts(tmp_path):
    data = load_lvis(write(tmp_path, long_tailed(), with_images=False))
    for seed in range(20):
        train, held = split_heldout(data, 0.15, seed)
        assert (train, held) == split_heldout(data, 0.15, seed)
        assert len(held) == 30 and len(train) == 170 and not set(train) & set(held)
        assert {3, 7} & set(train) and {3, 7} & set(held)  # the 2-image class is in both parts
    assert split_heldout(data, 0.15, 0) != split_heldout(data, 0.15, 1)


def test_a_class_with_one_image_keeps_it_for_training(tmp_path):
    # Category 30 only in image 3: the random fill of the held-out part never takes it (D116),
    # whatever the seed, and the held-out size stays the same.
    d = long_tailed()
    d["annotations"] = [a for a in d["annotations"] if not (a["category_id"] == 30 and a["image_id"] == 7)]
    data = load_lvis(write(tmp_path, d, with_images=False))
    for seed in range(20):
        train, held = split_heldout(data, 0.5, seed)
        assert 3 in train and len(held) == 100


def test_no_reservation_takes_a_class_s_only_image(tmp_path):
    # Category 30 in images 3 and 7, category 40 only in image 7: when 30's training image is 3,
    # its held-out candidate would be 7, the only image of 40; it gets none instead.
    d = long_tailed()
    d["annotations"].append({**d["annotations"][0], "id": 10_000, "image_id": 7, "category_id": 40})
    d["categories"].append({**d["categories"][0], "id": 40, "name": "only_in_7"})
    data = load_lvis(write(tmp_path, d, with_images=False))
    for seed in range(20):
        train, held = split_heldout(data, 0.15, seed)
        assert 7 in train and len(held) == 30


def test_split_cli_writes_both_files(tmp_path, capsys):
    path = write(tmp_path, long_tailed(), with_images=False)
    assert main(["split", "--train", str(path), "--out", str(tmp_path / "s"), "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "train 170 images, held-out 30 images" in out
    assert "rare          1 classes; in both parts: 1 of the 1 with ≥ 2 images" in out
    train = json.loads((tmp_path / "s/train.json").read_text())
    held = json.loads((tmp_path / "s/heldout.json").read_text())
    assert len(train["images"]) + len(held["images"]) == 200
    assert train["categories"] == held["categories"] and train["info"] == {"description": "tiny"}
    assert main(["split", "--train", str(path), "--out", str(tmp_path / "t"), "--heldout", "1.5"]) == 2


def test_tiny_files_split_with_both_parts_or_are_refused(tmp_path, capsys):
    three = load_lvis(write(tmp_path, long_tailed(3), with_images=False))
    train, held = split_heldout(three, 0.15, 0)  # round(0.45) = 0 would leave nothing held out
    assert len(held) == 1 and len(train) == 2
    path = write(tmp_path, long_tailed(1), name="one.json", with_images=False)
    assert main(["split", "--train", str(path), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert f"{path}: file: images: 1 image(s): a split needs at least 2" in err
    assert not (tmp_path / "s").exists()  # nothing written


def test_repeat_factors_hand_computed(tmp_path):
    data = load_lvis(write(tmp_path, long_tailed(), with_images=False))
    ids = sorted(data.images)
    # t = 0.1: f_10 = 1 → r = 1; f_20 = 0.1 → r = 1; f_30 = 0.01 → r = sqrt(10) = 3.1623.
    r = repeat_factors(data, ids, threshold=0.1)
    assert r[2].item() == pytest.approx(math.sqrt(10)) and r[6].item() == pytest.approx(math.sqrt(10))
    assert r[9].item() == 1.0 and r[0].item() == 1.0
    # t = 0.5: f_20 = 0.1 → sqrt(5); image 10 holds classes 10 and 20 → max.
    assert repeat_factors(data, ids, threshold=0.5)[9].item() == pytest.approx(math.sqrt(5))


def test_sampler_repeats_in_expectation_and_shards_across_ranks():
    factors = torch.tensor([1.0, 2.5, 1.0, 4.0])
    whole = RepeatFactorSampler(factors, seed=1, rank=0, world_size=1)
    counts = torch.zeros(4)
    epochs = 400
    for e in range(epochs):
        whole.set_epoch(e)
        counts += torch.bincount(torch.tensor(list(whole)), minlength=4)
    torch.testing.assert_close(counts / epochs, factors, atol=0.08, rtol=0)
    ranks = [RepeatFactorSampler(factors, seed=1, rank=r, world_size=2) for r in (0, 1)]
    for s in [*ranks, whole]:
        s.set_epoch(5)
    a, b, w = list(ranks[0]), list(ranks[1]), list(whole)
    assert len(a) == len(b) == math.ceil(len(w) / 2)
    # Together the ranks cover the single-process epoch exactly, plus at most one wrapped index.
    assert not Counter(w) - Counter(a + b) and sum((Counter(a + b) - Counter(w)).values()) == len(w) % 2
