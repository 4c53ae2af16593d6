"""The unlabeled pool as memory-mapped columns (D101): the same images, order and errors as
``load_lvis``, streamed in chunks of any size, written and mapped by folder, and the student's
unlabeled views the same bytes over it as over ``LvisDataset``."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lvis_factory import tiny_lvis, write
from tailteacher.data import json_stream
from tailteacher.data.dataset import LvisDataset, Sample, Skipped
from tailteacher.data.lvis_json import load_lvis
from tailteacher.data.pool_dataset import PoolDataset
from tailteacher.data.pool_index import index_folder, index_of, open_index, read_pool, write_index
from tailteacher.errors import InputError
from tailteacher.pipeline.data import DRAWS_PER_EPOCH, UnlabeledViews, collate_unlabeled

CATS = [{"id": 10, "name": "a"}, {"id": 20, "name": "b"}]


def _pool(tmp_path: Path, images: list[object], text: str | None = None, **extra: object) -> Path:
    path = tmp_path / "pool.json"
    path.write_text(text if text is not None else json.dumps({"images": images, "categories": CATS, **extra}))
    return path


def _columns(index) -> tuple[list[int], list[int], list[int], list[str]]:
    return (
        index.ids.tolist(),
        index.heights.tolist(),
        index.widths.tolist(),
        [index.relpath(k) for k in range(len(index))],
    )


def test_images_sorted_by_id_with_sizes_and_paths(tmp_path):
    images = [
        {"id": 10, "file_name": "b/10.jpg", "width": 64, "height": 48},
        {
            "id": 3,
            "coco_url": "http://images.cocodataset.org/unlabeled2017/000003.jpg",
            "width": 640.0,
            "height": 480,
        },
        {"id": 5, "file_name": "é/5.png", "width": 1, "height": 2, "neg_category_ids": [20]},
    ]
    path = _pool(tmp_path, images, info={"year": 2017})
    index = read_pool(path)
    assert _columns(index) == (
        [3, 5, 10],
        [480, 2, 48],
        [640, 1, 64],
        ["unlabeled2017/000003.jpg", "é/5.png", "b/10.jpg"],
    )
    assert (
        index.ids.dtype == np.int64
        and index.heights.dtype == np.int32
        and index.offsets.tolist() == [0, 24, 32, 40]
    )
    assert _columns(index_of(load_lvis(path, require_annotations=False))) == _columns(index)


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_any_chunk_size_reads_the_same(tmp_path, monkeypatch, chunk):
    images = [
        {"id": 1000 + k, "file_name": f"x/{k}.png", "width": 10 + k, "height": 123456} for k in range(20)
    ]
    path = _pool(tmp_path, images[::-1], text=None)
    path.write_bytes(
        b"\xef\xbb\xbf" + json.dumps({"categories": CATS, "images": images[::-1]}, indent=2).encode()
    )
    monkeypatch.setattr(json_stream, "CHUNK", chunk)
    got = _columns(read_pool(path))
    assert got == (
        [1000 + k for k in range(20)],
        [123456] * 20,
        [10 + k for k in range(20)],
        [f"x/{k}.png" for k in range(20)],
    )


BAD = {
    "duplicate id and bad sizes": [
        {"id": 1, "file_name": "a.png", "width": 0, "height": 1.5},
        {"id": 1, "file_name": "/abs.png", "width": 2, "height": 2},
        {"id": "2", "file_name": "b.png", "width": 2, "height": 2},
        7,
    ],
    "unsafe paths": [
        {"id": 1, "file_name": "../up.png", "width": 2, "height": 2},
        {"id": 2, "width": 2, "height": 2},
        {"id": 3, "file_name": "C:\\x.png", "width": 2, "height": 2},
    ],
    "federated lists": [
        {"id": 1, "file_name": "a.png", "width": 2, "height": 2, "neg_category_ids": [99]},
        {"id": 2, "file_name": "b.png", "width": 2, "height": 2, "not_exhaustive_category_ids": "x"},
    ],
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_records_give_load_lvis_problems(tmp_path, case):
    path = _pool(tmp_path, BAD[case])
    with pytest.raises(InputError) as old:
        load_lvis(path, require_annotations=False)
    with pytest.raises(InputError) as new:
        read_pool(path)
    assert new.value.problems == old.value.problems and new.value.problems


def test_exact_problems_of_a_duplicate_and_a_missing_key(tmp_path):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps({"images": [{"id": 4, "file_name": "a.png", "width": 3, "height": 3}] * 2}))
    with pytest.raises(InputError) as err:
        read_pool(path)
    assert [(p.file, p.record, p.field, p.message) for p in err.value.problems] == [
        (str(path), "-", "categories", "missing key"),
        (str(path), "image id=4", "id", "duplicate image id"),
        (str(path), "categories", "categories", "expected a non-empty list of category records"),
    ]


FILES = {
    "invalid json": '{"images": [{"id": 1,}], "categories": []}',
    "truncated": '{"images": [{"id": 1, "file_name": "a.png", "width": 2, "height": 2}',
    "top level array": "[1, 2]",
    "images not a list": '{"images": {"id": 1}, "categories": [{"id": 1}]}',
    "NaN width": '{"images": [{"id": 1, "file_name": "a.png", "width": NaN, "height": 2}], '
    '"categories": [{"id": 1}]}',
    "NaN elsewhere": '{"info": {"v": Infinity}, "images": [], "categories": [{"id": 1}]}',
    "extra data": '{"images": [], "categories": [{"id": 1}]} x',
    "annotation outside": json.dumps(
        {
            "images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}],
            "categories": CATS,
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 10, "bbox": [0, 0, 9, 9]},
                {"id": 2, "image_id": 5},
            ],
        }
    ),
}


@pytest.mark.parametrize("case", sorted(FILES))
def test_bad_files_give_load_lvis_error(tmp_path, case):
    path = _pool(tmp_path, [], text=FILES[case])
    with pytest.raises(InputError) as old:
        load_lvis(path, require_annotations=False)
    with pytest.raises(InputError) as new:
        read_pool(path)
    assert str(new.value) == str(old.value)


def test_missing_file_and_utf16_go_through_load_lvis(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_pool(tmp_path / "absent.json")
    path = tmp_path / "utf16.json"
    raw = {"images": [{"id": 2, "file_name": "a.png", "width": 5, "height": 6}], "categories": CATS}
    path.write_bytes(json.dumps(raw).encode("utf-16"))
    assert _columns(read_pool(path)) == ([2], [6], [5], ["a.png"])


def test_folder_round_trip_maps_and_pickles_by_folder(tmp_path):
    path = _pool(tmp_path, [{"id": k, "file_name": f"{k}.png", "width": k, "height": 1} for k in (9, 2, 5)])
    cache = tmp_path / "cache"
    (cache / ".stale.tmp").mkdir(parents=True)
    folder = index_folder(path, cache, "ab" * 32)
    assert folder == cache / ("ab" * 8) and sorted(p.name for p in cache.iterdir()) == ["ab" * 8]
    index = open_index(folder)
    assert isinstance(index.ids, np.memmap) and _columns(index) == (
        [2, 5, 9],
        [1, 1, 1],
        [2, 5, 9],
        ["2.png", "5.png", "9.png"],
    )
    blob = pickle.dumps(index)
    assert len(blob) < 300 and _columns(pickle.loads(blob)) == _columns(index)
    stamp = (folder / "ids.npy").stat().st_mtime_ns
    assert index_folder(path, cache, "ab" * 32) == folder and (folder / "ids.npy").stat().st_mtime_ns == stamp
    other = index_folder(path, cache, "cd" * 32)  # another pool: the old folder goes
    assert sorted(p.name for p in cache.iterdir()) == [other.name]
    write_index(index, tmp_path / "copy", "ab" * 32)
    (tmp_path / "copy" / "names.npy").write_bytes(b"junk")
    with pytest.raises(InputError, match="column cannot be read"):
        open_index(tmp_path / "copy")


def test_dataset_gives_lvis_dataset_views_skips_and_errors(tmp_path):
    raw = tiny_lvis(num_images=5)
    path = write(tmp_path, raw)
    raw["images"][2]["width"] = 41  # record unlike its file: skipped with the same reason
    raw["images"][4]["file_name"] = "img/missing.png"
    path.write_text(json.dumps(raw))
    old = LvisDataset(load_lvis(path, tmp_path / "images", require_annotations=False))
    new = PoolDataset(read_pool(path), tmp_path / "images")
    views_old, views_new = (UnlabeledViews(d, seed=3, short_side=32) for d in (old, new))
    assert len(old) == len(new) == 5
    for keyed in [k + 5 * key for key in (0, 7, DRAWS_PER_EPOCH + 1) for k in range(5)]:
        a, b = views_old[keyed], views_new[keyed]
        if isinstance(a, Skipped):
            assert a == b
            continue
        assert a.image_id == b.image_id
        for va, vb in ((a.weak, b.weak), (a.strong, b.strong)):
            assert torch.equal(va.image, vb.image) and va.boxes is vb.boxes is None
            assert va.geometry == vb.geometry
    sample = new[0]
    assert isinstance(sample, Sample) and sample.boxes.shape == (0, 4) and sample.masks.shape == (0, 32, 40)
    no_root = PoolDataset(read_pool(path), None)[0]  # skipped, as by LvisDataset, and then refused
    assert no_root == LvisDataset(load_lvis(path, None, require_annotations=False))[0]
    assert isinstance(no_root, Skipped) and "no image root given" in no_root.reason


def test_two_workers_read_the_mapped_folder(tmp_path):
    path = write(tmp_path, tiny_lvis(num_images=4))
    index = open_index(index_folder(path, tmp_path / "cache", "0" * 64))
    data = UnlabeledViews(PoolDataset(index, tmp_path / "images"), seed=0, short_side=None)
    loader = DataLoader(data, batch_size=2, num_workers=2, collate_fn=collate_unlabeled)
    ids = [p.image_id for pairs, _ in loader for p in pairs]
    assert ids == [1, 2, 3, 4]
