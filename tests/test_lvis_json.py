import json

import pytest
from PIL import Image

from lvis_factory import mutated, tiny_lvis, write
from tailteacher.cli import main
from tailteacher.data.lvis_json import check_image_files, load_lvis
from tailteacher.errors import InputError


def test_valid_file_loads_and_indexes(tmp_path):
    data = load_lvis(write(tmp_path, tiny_lvis()), tmp_path / "images", check_images=True)
    assert data.category_ids == [10, 20, 30] and data.class_index == {10: 0, 20: 1, 30: 2}
    assert len(data.images) == 6 and len(data.annotations) == 9
    assert [a["category_id"] for a in data.anns_by_image[2]] == [10, 20]
    assert data.image_path(data.images[1]) == tmp_path / "images" / "img" / "0001.png"


def test_coco_url_keeps_cocos_split_folder(tmp_path):
    """LVIS v1 records have only coco_url; the image lies in COCO's train2017/ or val2017/ folder."""

    def use_url(d):
        d["images"] = d["images"][:2]
        d["annotations"] = [a for a in d["annotations"] if a["image_id"] in (1, 2)]
        for img, split in zip(d["images"], ("train2017", "val2017"), strict=True):
            name = f"{img['id']:012d}.png"
            (tmp_path / "coco" / split).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (img["width"], img["height"])).save(tmp_path / "coco" / split / name)
            del img["file_name"]
            img["coco_url"] = f"http://images.cocodataset.org/{split}/{name}"

    path = write(tmp_path, mutated(tiny_lvis(), use_url), with_images=False)
    data = load_lvis(path, tmp_path / "coco", check_images=True)  # every file found where COCO keeps it
    assert [data.image_path(data.images[i]) for i in (1, 2)] == [
        tmp_path / "coco" / "train2017" / "000000000001.png",
        tmp_path / "coco" / "val2017" / "000000000002.png",
    ]


def test_every_problem_is_reported_with_file_record_and_field(tmp_path):
    def break_it(d):
        d["images"][1]["id"] = d["images"][0]["id"]  # duplicate id: image 2's annotations dangle
        d["images"][2]["file_name"] = "../../etc/passwd"
        d["images"][3]["file_name"] = "/abs/x.png"
        d["annotations"][0]["bbox"] = [30, 0, 20, 5]  # past the 40 px width
        d["annotations"][1]["bbox"] = [1, 1, -1, 5]  # negative width (0 is valid: LVISEval skips it)
        d["annotations"][2]["category_id"] = 99
        d["annotations"][3]["image_id"] = 1234
        d["annotations"][4]["segmentation"] = [[1, 2, 3]]
        d["annotations"][5]["segmentation"] = {"size": [32, 40], "counts": "garbage!!"}
        d["annotations"][6]["id"] = d["annotations"][7]["id"]
        d["categories"][2]["frequency"] = "x"
        d["images"][4]["neg_category_ids"] = [77]

    path = write(tmp_path, mutated(tiny_lvis(), break_it), with_images=False)
    with pytest.raises(InputError) as exc:
        load_lvis(path)
    found = {(p.record, p.field) for p in exc.value.problems}
    assert found == {
        ("image id=1", "id"),
        ("image id=3", "file_name"),
        ("image id=4", "file_name"),
        ("annotation id=1", "bbox"),
        ("annotation id=2", "bbox"),
        ("annotation id=2", "image_id"),
        ("annotation id=3", "image_id"),
        ("annotation id=3", "category_id"),
        ("annotation id=4", "image_id"),
        ("annotation id=5", "segmentation"),
        ("annotation id=6", "segmentation.counts"),
        ("annotation id=8", "id"),
        ("category id=30", "frequency"),
        ("image id=5", "neg_category_ids"),
    }
    assert all(p.file == str(path) for p in exc.value.problems)
    assert "contains '..'" in str(exc.value) and "lies outside the 40x32 image" in str(exc.value)


def test_missing_keys_and_bad_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(InputError, match="categories: missing key"):
        load_lvis(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="invalid json"):
        load_lvis(path)
    with pytest.raises(InputError, match="no such file"):
        load_lvis(tmp_path / "absent.json")


def test_image_files_checked_on_request(tmp_path):
    path = write(tmp_path, tiny_lvis())
    (tmp_path / "images/img/0002.png").write_bytes(b"not a png")
    (tmp_path / "images/img/0003.png").unlink()
    data = load_lvis(path, tmp_path / "images")  # opens fast: files not read
    problems = check_image_files(data)
    assert [(p.record, p.field) for p in problems] == [
        ("image id=2", "file_name"),
        ("image id=3", "file_name"),
    ]
    assert "unreadable" in problems[0].message and "file not found" in problems[1].message
    with pytest.raises(InputError):
        load_lvis(path, tmp_path / "images", check_images=True)


def test_cli_reports_bad_file_with_exit_2_and_writes_nothing(tmp_path, capsys):
    bad = write(
        tmp_path,
        mutated(tiny_lvis(), lambda d: d["annotations"][0].update(bbox=[0, 0, -1, 2])),
        with_images=False,
    )
    out = tmp_path / "split"
    assert main(["split", "--train", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: annotation id=1: bbox: expected a width and height ≥ 0" in err
    assert "Traceback" not in err and not out.exists()


def test_classes_follow_category_ids_not_file_order(tmp_path):
    from tailteacher.evaluation import load_ground_truth

    path = write(tmp_path, mutated(tiny_lvis(), lambda d: d["categories"].reverse()), with_images=False)
    data = load_lvis(path)
    assert data.category_ids == [10, 20, 30]
    # The evaluator numbers categories the same way, so its per-class Δ lines up with class k.
    gt = load_ground_truth(path)
    assert [int(c["id"]) for c in gt.categories] == data.category_ids


def test_os_errors_are_messages_with_exit_2(tmp_path, capsys):
    assert main(["split", "--train", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "is a directory" in capsys.readouterr().err
    path = write(tmp_path, tiny_lvis(), with_images=False)
    assert main(["split", "--train", str(path), "--out", str(tmp_path)]) == 2
    assert "would overwrite --train" in capsys.readouterr().err
    assert main(["split", "--train", str(path), "--out", "/proc/forbidden"]) == 2
    err = capsys.readouterr().err
    assert "/proc/forbidden" in err and "Traceback" not in err


def test_symlinks_out_of_the_image_root_are_refused(tmp_path):
    """A link inside the root that points outside it is an unsafe path, like '..' (D64)."""
    from tailteacher.data.dataset import LvisDataset, Skipped

    path = write(tmp_path, tiny_lvis())
    outside = tmp_path / "elsewhere.png"
    (tmp_path / "images/img/0002.png").rename(outside)
    (tmp_path / "images/img/0002.png").symlink_to(outside)
    (tmp_path / "root_link").symlink_to(tmp_path / "images")  # a linked root is fine: resolved too
    data = load_lvis(path, tmp_path / "root_link")
    problems = check_image_files(data)
    assert [(p.record, p.field) for p in problems] == [("image id=2", "file_name")]
    assert "outside the image root" in problems[0].message
    item = LvisDataset(data, [2])[0]
    assert isinstance(item, Skipped) and "outside the image root" in item.reason
    assert not isinstance(LvisDataset(data, [1])[0], Skipped)
