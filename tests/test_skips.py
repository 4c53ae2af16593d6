"""Images a stage cannot use are listed with file and reason, and too many stop the stage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tailteacher.config_io import load_config
from tailteacher.data.dataset import Skipped
from tailteacher.data.skips import check_skipped, skip_summary
from tailteacher.data.synth import generate
from tailteacher.errors import InputError

CONFIG = Path(__file__).parents[1] / "src" / "tailteacher" / "configs" / "demo.yaml"


def test_summary_lists_each_image_once_with_file_and_reason():
    skips = [Skipped(3, "OSError: truncated", "img/3.png"), Skipped(3, "OSError: truncated", "img/3.png")]
    skips.append(Skipped(7, "file is 80x64, record says 64x64", "img/7.png"))
    assert skip_summary(skips, 10) == {
        "count": 2,
        "total": 10,
        "images": [
            {"image_id": 3, "file": "img/3.png", "reason": "OSError: truncated"},
            {"image_id": 7, "file": "img/7.png", "reason": "file is 80x64, record says 64x64"},
        ],
    }
    assert check_skipped(skips, 10, 0.2, "train.json")["count"] == 2  # 2 of 10 is not above 20 %
    with pytest.raises(InputError) as err:
        check_skipped(skips, 10, 0.1, "train.json")
    fields = [(p.record, p.field) for p in err.value.problems]
    assert fields == [
        ("image id=3", "file_name"),
        ("image id=7", "file_name"),
        ("images", "data.max_skipped_fraction"),
    ]
    assert "img/7.png: file is 80x64" in str(err.value) and "2 of 10 images" in str(err.value)


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """The tiny benchmark with one truncated PNG and one PNG of another size than its record."""
    out = tmp_path_factory.mktemp("tiny")
    generate("tiny", 0, out)
    train = json.loads((out / "train.json").read_text())
    first, second = (out / "images" / img["file_name"] for img in train["images"][:2])
    first.write_bytes(first.read_bytes()[:100])
    Image.new("RGB", (17, 9)).save(second)
    return out, len(train["images"]), [img["file_name"] for img in train["images"][:2]]


def _config(data: Path, run: Path, max_fraction: float):
    sets = [
        f"data.train_json={data}/train.json",
        f"data.val_json={data}/val.json",
        f"data.image_root={data}/images",
        "data.batch_size=4",
        "data.workers=0",
        f"data.max_skipped_fraction={max_fraction}",
        "model.image_min_size=64",
        "model.image_max_size=64",
        f"run.run_dir={run}",
    ]
    return load_config(CONFIG, sets)


def test_prototypes_list_the_skipped_images_or_stop(broken, tmp_path):
    from tailteacher.pipeline.prototypes import compute_prototypes

    data, total, files = broken
    compute_prototypes(_config(data, tmp_path / "ok", 0.5), progress=False)
    skipped = json.loads((tmp_path / "ok" / "prototypes.json").read_text())["skipped_images"]
    assert skipped["count"] == 2 and skipped["total"] == total
    assert [s["file"] for s in skipped["images"]] == files
    assert "record says" in skipped["images"][1]["reason"]
    with pytest.raises(InputError, match=r"data\.max_skipped_fraction"):
        compute_prototypes(_config(data, tmp_path / "strict", 0.0), progress=False)
    assert not (tmp_path / "strict" / "prototypes.json").exists()
    shutil.rmtree(tmp_path / "ok")
