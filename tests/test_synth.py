import hashlib
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from tailteacher.cli import main
from tailteacher.commands.synth import format_summary
from tailteacher.data import synth
from tailteacher.data import synth_draw as draw
from tailteacher.data.lvis_json import load_lvis
from tailteacher.labels import class_prototypes, cosine_similarity_matrix

TINY = synth.PRESETS["tiny"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny0")
    summary = synth.generate("tiny", 0, out)
    return out, summary


def _load(out, name):
    return json.loads((out / name).read_text())


def _decode(ann, image):
    rles = mask_utils.frPyObjects(ann["segmentation"], image["height"], image["width"])
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def _hashes(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def test_plan_is_fixed_by_the_preset_and_follows_the_lvis_rule():
    tiny = synth.class_plan("tiny")
    assert [c.name for c in tiny[:3]] == ["red_solid_circle", "red_striped_circle", "blue_dotted_circle"]
    by_rank = sorted(tiny, key=lambda c: c.rank)
    assert [c.train_images for c in by_rank] == [160, 107, 72, 48, 33, 22, 15, 10, 7, 4, 3, 2]
    assert [c.frequency for c in by_rank] == list("ffcccccrrrrr")
    expected = {"tiny": (5, 5, 2), "demo": (28, 27, 9), "bench": (33, 31, 16)}
    for name, groups in expected.items():
        plan = synth.class_plan(name)
        assert tuple(sum(c.frequency == g for c in plan) for g in "rcf") == groups
        assert len({c.name for c in plan}) == len(plan) and [c.id for c in plan] == list(
            range(1, len(plan) + 1)
        )
        # The unlabeled pool is flatter than the labeled set: every rare class has a larger share.
        n_train, n_pool = sum(c.train_images for c in plan), sum(c.unlabeled_images for c in plan)
        assert all(c.unlabeled_images / n_pool > c.train_images / n_train for c in plan if c.frequency == "r")
        if name == "tiny":
            continue
        # Rare classes are spread across families, and every rare class has a frequent look-alike.
        families = {c.family for c in plan}
        assert {c.family for c in plan if c.frequency == "r"} == families
        for c in plan:
            if c.frequency == "r":
                assert any(o.family == c.family and o.frequency == "f" for o in plan)
        # Some rare classes are near-hue twins (same family and texture) of a frequent class.
        twin = {"red": "rose", "rose": "red", "blue": "violet", "violet": "blue"}
        frequent = {(c.family, c.colour, c.texture) for c in plan if c.frequency == "f"}
        twins = [
            c for c in plan if c.frequency == "r" and (c.family, twin.get(c.colour), c.texture) in frequent
        ]
        assert len(twins) >= 4


@pytest.mark.parametrize("name", ["tiny", "demo", "bench"])
def test_layouts_place_every_class_in_exactly_its_planned_images(name):
    preset, plan = synth.PRESETS[name], synth.class_plan(name)
    for split in synth.SPLITS:
        for seed in range(3):
            layout = synth.split_layout(name, split, seed)
            assert all(1 <= len(set(x)) == len(x) <= preset.max_classes_per_image for x in layout)
            count = Counter(k for x in layout for k in x)
            assert [count[c.id - 1] for c in plan] == [getattr(c, f"{split}_images") for c in plan]


def test_layout_falls_back_when_spare_capacity_is_in_too_few_images():
    # Two classes in all 10 images: once the first has taken every image, some have no spare
    # capacity left and the second must go past it.
    two = synth.Preset("two", ("circle", "square"), (("red", "solid"),), 64, 10, 10, 10, 10, 10)
    assert synth.split_layout(two, "train", 0) == [[0, 1]] * 10


def test_power_law_counts_are_quantiles_from_head_to_tail():
    assert synth.power_law_counts(3, 100, 1, 1.0) == [100, 10, 1]  # log-uniform
    assert synth.power_law_counts(3, 100, 4, 0.5) == [100, 36, 4]  # sqrt-uniform
    assert synth.power_law_counts(1, 7, 2, 1.0) == [7]


def test_files_are_lvis_with_statistics_from_train(tiny):
    out, summary = tiny
    train, val, pool, truth = (_load(out, n) for n in synth.JSON_FILES)
    assert summary.images == {"train": 160, "val": 40, "unlabeled": 60}
    assert summary.groups == {"r": 5, "c": 5, "f": 2}
    assert summary.instances == {
        s: len(d["annotations"]) for s, d in zip(synth.SPLITS, (train, val, truth), strict=True)
    }
    anns = train["annotations"]
    image_count = Counter(c for _, c in {(a["image_id"], a["category_id"]) for a in anns})
    for cat, planned in zip(train["categories"], synth.class_plan("tiny"), strict=True):
        assert set(cat) == {
            "id",
            "name",
            "synset",
            "synonyms",
            "def",
            "frequency",
            "image_count",
            "instance_count",
        }
        assert cat["image_count"] == image_count[cat["id"]] == planned.train_images
        assert cat["instance_count"] == sum(a["category_id"] == cat["id"] for a in anns)
        assert cat["frequency"] == planned.frequency
    assert val["categories"] == pool["categories"] == truth["categories"] == train["categories"]
    assert pool["annotations"] == [] and pool["images"] != truth["images"]
    assert all(im["neg_category_ids"] == im["not_exhaustive_category_ids"] == [] for im in pool["images"])
    images = [im for d in (train, val, truth) for im in d["images"]]
    all_anns = [a for d in (train, val, truth) for a in d["annotations"]]
    assert [im["id"] for im in images] == list(range(1, len(images) + 1))
    assert [a["id"] for a in all_anns] == list(range(1, len(all_anns) + 1))
    for im in images:
        assert (im["width"], im["height"]) == (64, 64) and (out / "images" / im["file_name"]).is_file()
    assert {a["iscrowd"] for a in all_anns} == {0}
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # every write was atomic
    # The project's own loader accepts every file and every image.
    for name in ("train.json", "val.json", "unlabeled_truth.json"):
        assert len(load_lvis(out / name, out / "images", check_images=True).images) > 0


def test_val_has_every_class_and_the_pool_more_rare_instances(tiny):
    out, summary = tiny
    val = _load(out, "val.json")
    per_class = Counter(a["category_id"] for a in val["annotations"])
    assert min(per_class[c.id] for c in synth.class_plan("tiny")) >= TINY.val_min_images
    share = {s: summary.group_instances[s]["r"] / summary.instances[s] for s in synth.SPLITS}
    assert share["unlabeled"] > 3 * share["train"]


def test_masks_areas_and_boxes_agree_with_polygons_and_pixels(tiny):
    out, _ = tiny
    for split, name in (("train", "train.json"), ("unlabeled", "unlabeled_truth.json")):
        data = _load(out, name)
        by_image = {im["id"]: [] for im in data["images"]}
        for a in data["annotations"]:
            by_image[a["image_id"]].append(a)
        layout = synth.split_layout("tiny", split, 0)
        for k, image in enumerate(data["images"]):
            anns = by_image[image["id"]]
            masks = [_decode(a, image) for a in anns]
            for a, m in zip(anns, masks, strict=True):
                ys, xs = np.nonzero(m)
                assert a["area"] == m.sum()
                assert a["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert np.sum(masks, axis=0).max() <= 1  # objects never share a pixel
            # Drawing the image again from its generator gives the same pixels, and the painted
            # objects are exactly the decoded masks (plus any unannotated instance).
            again = synth.synth_image(
                "tiny", layout[k], synth.image_rng(0, split, k), complete=split != "train"
            )
            png = np.asarray(Image.open(out / "images" / image["file_name"]))
            assert np.array_equal(again.pixels, png)
            drawn = [inst for inst in again.instances if inst.annotated]
            assert len(drawn) == len(anns)
            assert all(np.array_equal(d.mask, m) for d, m in zip(drawn, masks, strict=True))
            missing = [inst.category_id for inst in again.instances if not inst.annotated]
            assert missing == image["not_exhaustive_category_ids"]


def test_painted_pixels_have_the_class_colour_and_texture(tiny):
    out, _ = tiny
    data = _load(out, "train.json")
    images = {im["id"]: im for im in data["images"]}
    cats = {c.id: c for c in synth.class_plan("tiny")}
    used = {c for c, _ in synth.PRESETS["tiny"].variants}  # near twins (rose, violet) overlap by design
    palette = {k: np.asarray(v, dtype=float) for k, v in draw.COLOURS.items() if k in used}
    for a in data["annotations"]:
        image = images[a["image_id"]]
        pixels = np.asarray(Image.open(out / "images" / image["file_name"])).astype(float)[_decode(a, image)]
        cat = cats[a["category_id"]]
        brightness = pixels.sum(axis=1)
        low, high = np.percentile(brightness, [20, 80])
        if cat.texture == "solid":
            mean = pixels.mean(axis=0)
            assert min(palette, key=lambda k: np.linalg.norm(palette[k] - mean)) == cat.colour
            assert low > 0.8 * high
        elif cat.texture == "striped":  # dark bands at 0.55 of the colour
            assert low < 0.75 * high
        else:  # blue with light dots
            assert np.median(pixels[:, 2] - pixels[:, 0]) > 100 and high > 1.2 * low


def test_federated_lists_are_true(tiny):
    out, _ = tiny
    for name in ("train.json", "val.json"):
        data = _load(out, name)
        present: dict[int, set[int]] = {im["id"]: set() for im in data["images"]}
        count = Counter((a["image_id"], a["category_id"]) for a in data["annotations"])
        for a in data["annotations"]:
            present[a["image_id"]].add(a["category_id"])
        for im in data["images"]:
            assert len(im["neg_category_ids"]) == TINY.neg_per_image
            assert not set(im["neg_category_ids"]) & present[im["id"]]
            for cid in im["not_exhaustive_category_ids"]:
                assert count[(im["id"], cid)] >= 1  # one instance of it was left out, not all
    train = _load(out, "train.json")
    assert sum(bool(im["not_exhaustive_category_ids"]) for im in train["images"]) == 9


def test_same_seed_same_bytes_other_seed_same_statistics(tiny, tmp_path):
    out, summary = tiny
    synth.generate("tiny", 0, tmp_path / "again")
    assert _hashes(tmp_path / "again") == _hashes(out)
    other = synth.generate(TINY, 1, tmp_path / "seed1")
    assert _hashes(tmp_path / "seed1")["train.json"] != _hashes(out)["train.json"]
    a, b = _load(out, "train.json")["categories"], _load(tmp_path / "seed1", "train.json")["categories"]
    assert [(c["name"], c["image_count"], c["frequency"]) for c in a] == [
        (c["name"], c["image_count"], c["frequency"]) for c in b
    ]
    assert other.images == summary.images
    assert abs(other.instances["train"] - summary.instances["train"]) < 0.1 * summary.instances["train"]


def _features(pixels: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour block: 64-bin RGB histogram of the object's pixels. Shape block: 8-bin radial mass
    profile about the centroid and the sorted 16-sector extent profile (rotation-invariant)."""
    q = pixels[mask].astype(np.int64) // 64
    colour = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64) / mask.sum()
    ys, xs = np.nonzero(mask)
    dx, dy = xs - xs.mean(), ys - ys.mean()
    d = np.hypot(dx, dy) / np.hypot(dx, dy).max()
    radial = np.bincount(np.minimum((d * 8).astype(int), 7), minlength=8) / d.size
    sector = ((np.arctan2(dy, dx) + math.pi) * 16 / (2 * math.pi)).astype(int) % 16
    extent = np.zeros(16)
    np.maximum.at(extent, sector, d)
    return colour, np.concatenate([radial, np.sort(extent)])


def lookalike_figures(out: Path) -> dict[str, dict[str, float]]:
    """Eq. 1 prototypes and S from the train split's GT instances, with the colour block, the
    shape block, or both. Each block is centred over all instances and scaled to unit RMS, so
    that neither dominates (raw non-negative histograms all have cosine > 0.6). Returns the mean
    cosine over pairs of distinct classes: same family, other family, same variant (colour and
    texture) of another family, and unrelated (neither)."""
    data = _load(out, "train.json")
    images = {im["id"]: im for im in data["images"]}
    names = [c["name"].rsplit("_", 1) for c in data["categories"]]
    blocks: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    labels, pixels, current = [], None, None
    for a in data["annotations"]:
        image = images[a["image_id"]]
        if current != image["id"]:
            pixels, current = np.asarray(Image.open(out / "images" / image["file_name"])), image["id"]
        for block, f in zip(blocks, _features(pixels, _decode(a, image)), strict=True):
            block.append(f)
        labels.append(a["category_id"] - 1)
    scaled = []
    for block in blocks:
        x = np.asarray(block) - np.mean(block, axis=0)
        scaled.append(x / np.sqrt((x**2).sum(axis=1).mean()))
    c = len(names)
    fam = np.array([[names[i][1] == names[j][1] for j in range(c)] for i in range(c)])
    var = np.array([[names[i][0] == names[j][0] for j in range(c)] for i in range(c)])
    off = ~np.eye(c, dtype=bool)
    figures = {}
    for key, x in (("colour", scaled[0]), ("shape", scaled[1]), ("both", np.hstack(scaled))):
        protos, _ = class_prototypes(torch.from_numpy(x), torch.tensor(labels), c)
        s = cosine_similarity_matrix(protos).numpy()
        figures[key] = {
            "same family": float(s[off & fam].mean()),
            "other family": float(s[off & ~fam].mean()),
            "same variant, other family": float(s[var & ~fam].mean()),
            "unrelated": float(s[~var & ~fam].mean()),
        }
    return figures


def _check_lookalikes(figures):
    print(json.dumps(figures, indent=1))
    both, shape, colour = figures["both"], figures["shape"], figures["colour"]
    assert both["same family"] > both["other family"] + 0.2
    assert both["same variant, other family"] > both["unrelated"] + 0.2
    assert shape["same family"] > 0.9 > 0 > shape["other family"]
    assert colour["same variant, other family"] > 0.8 and colour["unrelated"] < 0


def test_prototypes_put_lookalike_classes_closer(tiny):
    _check_lookalikes(lookalike_figures(tiny[0]))


@pytest.mark.slow
def test_demo_preset_generates_and_keeps_the_lookalike_structure(tmp_path):
    summary = synth.generate("demo", 0, tmp_path)
    print(format_summary(summary))
    assert summary.groups == {"r": 28, "c": 27, "f": 9}
    assert summary.seconds < 60
    _check_lookalikes(lookalike_figures(tmp_path))


def test_cli_writes_refuses_a_full_folder_and_overwrites(tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["synth", "--preset", "tiny", "--seed", "3", "--out", str(out)]) == 0
    assert "classes: 12 (rare 5, common 5, frequent 2)" in capsys.readouterr().out
    assert main(["synth", "--preset", "tiny", "--out", str(out)]) == 2
    assert f"--out: {out} exists and is not empty; pass --overwrite" in capsys.readouterr().err
    stale = out / "images" / "train" / "999999.png"
    stale.write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    assert main(["synth", "--preset", "tiny", "--seed", "3", "--out", str(out), "--overwrite"]) == 0
    assert not stale.exists() and (out / "notes.txt").read_text() == "mine"
    assert len(list((out / "images" / "train").glob("*.png"))) == 160


def test_bad_arguments_are_named(tmp_path, capsys):
    assert main(["synth", "--preset", "tiny", "--seed", "-1", "--out", str(tmp_path / "x")]) == 2
    assert "--seed: expected a non-negative integer, got -1" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["synth", "--preset", "tiny", "--out", str(tmp_path / "file")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--preset", "huge", "--out", str(tmp_path / "y")])
    assert exc.value.code == 2
    with pytest.raises(ValueError, match="preset: expected one of tiny, demo, bench"):
        synth.generate("huge", 0, tmp_path / "z")
    with pytest.raises(ValueError, match="unknown or missing"):
        synth.Preset("p", ("blob",), (("red", "solid"),), 64, 10, 10, 10, 5, 1)
    crowded = synth.Preset(
        "p", ("circle",), (("red", "solid"),) * 1, 64, 10, 10, 10, 10, 1, val_min_images=20
    )
    with pytest.raises(ValueError, match="val has 20 class-image slots for 10 images"):
        synth.split_layout(crowded, "val", 0)


def test_official_lvis_evaluation_scores_the_ground_truth_perfectly(tiny, monkeypatch):
    lvis = pytest.importorskip("lvis")
    monkeypatch.setattr(np, "float", float, raising=False)  # lvis 0.5.3 predates numpy 2
    gt = lvis.LVIS(str(tiny[0] / "val.json"))
    results = []
    for a in gt.dataset["annotations"]:
        image = gt.imgs[a["image_id"]]
        rle = mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], image["height"], image["width"]))
        rle["counts"] = rle["counts"].decode()
        results.append(
            {"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": rle, "score": 1.0}
        )
    ev = lvis.LVISEval(gt, lvis.LVISResults(gt, results), "segm")
    ev.run()
    stats = ev.get_results()
    assert stats["AP"] == stats["APr"] == stats["APc"] == stats["APf"] == 1.0
