"""benchmarks/paired_table.py: the APr split by training images and the paired differences."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "paired_table", Path(__file__).parents[1] / "benchmarks" / "paired_table.py"
)
assert _SPEC is not None and _SPEC.loader is not None
paired_table = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(paired_table)


def _model(folder: Path, train: Path, ap: dict[int, float]) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"data:\n  train_json: {train}\n")
    per_category = [
        {"id": 1, "frequency": "r", "AP": ap[1]},
        {"id": 2, "frequency": "r", "AP": ap[2]},
        {"id": 3, "frequency": "r", "AP": ap[3]},
        {"id": 4, "frequency": "f", "AP": 0.9},
    ]
    metrics = {"AP": 0.5, "APr": sum(ap.values()) / 3, "APc": 0.0, "APf": 0.9}
    (folder / "val_metrics.json").write_text(json.dumps({"metrics": metrics, "per_category": per_category}))
    return folder


def test_rare_classes_split_by_whether_the_model_trained_on_them(tmp_path):
    train = tmp_path / "train.json"  # rare classes 1 and 2 have a training image, 3 has none
    annotations = [{"category_id": 1}, {"category_id": 2}, {"category_id": 4}]
    train.write_text(json.dumps({"annotations": annotations}))
    m = paired_table.metrics(_model(tmp_path / "a", train, {1: 0.5, 2: 0.25, 3: 0.1}))
    assert m["APr seen"] == 37.5 and m["APr 0-shot"] == 10.0
    ref = _model(tmp_path / "ref", train, {1: 0.25, 2: 0.25, 3: 0.2})
    text = paired_table.table("ref", [ref], {"a": [tmp_path / "a"]})
    # APr 28.3 vs 23.3: the seen classes gain 12.5, the 0-shot one loses 10.
    row = "| a | 0 | 50.0 | 28.3 | 0.0 | 90.0 | 37.5 | 10.0 | - | +0.0 | +5.0 | +0.0 | +0.0 | +12.5 | -10.0 |"
    assert row in text
