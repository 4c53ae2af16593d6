"""The embedded benchmark's mining pool (issue 13 §2): drawn like the world, beside files that do
not change with it."""

from __future__ import annotations

import json
from collections import Counter

from tailteacher.data import synth
from tailteacher.data.synth import Preset, class_plan, generate, pool_plan

MINI = Preset(
    name="mini",
    families=("circle", "square"),
    variants=(("red", "solid"), ("blue", "striped")),
    image_size=32,
    train_images=24,
    val_images=8,
    unlabeled_images=8,
    head_images=20,
    tail_images=2,
    val_min_images=2,
    max_classes_per_image=3,
    neg_per_image=1,
    object_size=(0.2, 0.3),
)


def test_pool_follows_the_training_law_and_leaves_the_other_files_alone(tmp_path):
    plain = generate(MINI, 1, tmp_path / "plain")
    pooled = generate(MINI, 1, tmp_path / "pooled", pool_images=40)
    for name in synth.JSON_FILES:
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "pooled" / name).read_bytes()
    for png in (tmp_path / "plain" / "images").rglob("*.png"):
        assert png.read_bytes() == (tmp_path / "pooled" / png.relative_to(tmp_path / "plain")).read_bytes()
    assert "pool" not in plain.images and pooled.images["pool"] == 40
    truth = json.loads((tmp_path / "pooled" / "pool_truth.json").read_text())
    listed = json.loads((tmp_path / "pooled" / "pool.json").read_text())
    assert listed["annotations"] == [] and [i["id"] for i in listed["images"]] == [
        i["id"] for i in truth["images"]
    ]
    assert min(i["id"] for i in truth["images"]) == 1 + 24 + 8 + 8  # ids go on after the other splits
    plan = pool_plan(MINI.__class__(**{**MINI.__dict__, "pool_images": 40}), 1)
    assert sum(p is None for p in plan) == truth["info"]["distractor_images"] == 10  # 25 %
    images_of = Counter(cid for _, cid in {(a["image_id"], a["category_id"]) for a in truth["annotations"]})
    classes = class_plan(MINI.__class__(**{**MINI.__dict__, "pool_images": 40}))
    assert {c.id: c.pool_images for c in classes} == dict(images_of)
    train = {c.id: c.train_images for c in classes}
    # ∝ the training counts, not tempered: the head class has the most pool images
    head = max(train, key=train.get)
    assert images_of[head] == max(images_of.values())
    distractors = {i["id"] for i in truth["images"]} - {a["image_id"] for a in truth["annotations"]}
    assert len(distractors) == 10
