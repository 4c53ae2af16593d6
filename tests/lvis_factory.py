"""Tiny LVIS-format data sets for tests, written to a temporary folder."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def tiny_lvis(num_images: int = 6, size: tuple[int, int] = (40, 32)) -> dict[str, Any]:
    """3 categories (ids 10, 20, 30), one or two square instances per image, both groups of
    federated lists present. ``size`` is (width, height)."""
    w, h = size
    cats = [
        {
            "id": 10,
            "name": "cat_a",
            "synset": "a.n.01",
            "frequency": "f",
            "image_count": 0,
            "instance_count": 0,
        },
        {
            "id": 20,
            "name": "cat_b",
            "synset": "b.n.01",
            "frequency": "c",
            "image_count": 0,
            "instance_count": 0,
        },
        {
            "id": 30,
            "name": "cat_c",
            "synset": "c.n.01",
            "frequency": "r",
            "image_count": 0,
            "instance_count": 0,
        },
    ]
    images, anns = [], []
    for i in range(num_images):
        iid = i + 1
        images.append(
            {
                "id": iid,
                "file_name": f"img/{iid:04d}.png",
                "width": w,
                "height": h,
                "neg_category_ids": [30] if i % 3 == 0 else [],
                "not_exhaustive_category_ids": [20] if i % 4 == 1 else [],
            }
        )
        for k, cid in enumerate([10] + ([20] if i % 2 else [])):
            x, y, s = 2 + 12 * k, 3 + k, 8
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": iid,
                    "category_id": cid,
                    "bbox": [x, y, s, s],
                    "area": s * s,
                    "segmentation": [[x, y, x + s, y, x + s, y + s, x, y + s]],
                    "iscrowd": 0,
                }
            )
    return {"info": {"description": "tiny"}, "images": images, "annotations": anns, "categories": cats}


def write(tmp: Path, data: dict[str, Any], name: str = "train.json", with_images: bool = True) -> Path:
    path = tmp / name
    path.write_text(json.dumps(data))
    if with_images:
        rng = np.random.default_rng(0)
        for img in data["images"]:
            f = tmp / "images" / img["file_name"]
            f.parent.mkdir(parents=True, exist_ok=True)
            arr = rng.integers(0, 255, (img["height"], img["width"], 3), dtype=np.uint8)
            Image.fromarray(arr).save(f)
    return path


def mutated(data: dict[str, Any], fn: Any) -> dict[str, Any]:
    d = copy.deepcopy(data)
    fn(d)
    return d
