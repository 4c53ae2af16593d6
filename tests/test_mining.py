"""Mining (issue 13, the paper's §4.1): pool listing, dedup, Faiss search, embedding cache, the
stage end to end on hand-made images whose embeddings are known exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tailteacher.cli import main
from tailteacher.config import Config
from tailteacher.errors import InputError
from tailteacher.mining import mine as mine_module
from tailteacher.mining.dedup import first_of_identical, near_duplicate_of
from tailteacher.mining.embed import Embedder, embed_pool
from tailteacher.mining.index import build_index, choose_kind, load_index, save_index, search
from tailteacher.mining.pool import PoolImage, list_pool


def _png(path: Path, colour: tuple[int, int, int], size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)
    return path


def mean_colour_embedder(size: int = 8) -> Embedder:
    """Each image's mean colour as its embedding: a red image is (1, 0, 0) exactly."""

    def fn(images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3))

    return Embedder("mean-colour", size, fn, torch.device("cpu"))


# -- pool --------------------------------------------------------------------------------------------


def test_pool_from_a_folder_a_list_and_a_json(tmp_path):
    root = tmp_path / "images"
    for name in ("pool/b.png", "pool/a.jpg", "pool/sub/c.PNG"):
        _png(root / name, (1, 2, 3))
    (root / "pool" / "notes.txt").write_text("not an image")
    assert list_pool(root / "pool", root) == [
        PoolImage(1, "pool/a.jpg"),
        PoolImage(2, "pool/b.png"),
        PoolImage(3, "pool/sub/c.PNG"),
    ]
    listing = root / "list.txt"
    listing.write_text("# chosen\npool/sub/c.PNG\n\npool/a.jpg\n")
    assert list_pool(listing, root) == [PoolImage(1, "pool/sub/c.PNG"), PoolImage(2, "pool/a.jpg")]
    doc = {
        "images": [{"id": 7, "file_name": "pool/b.png", "width": 16, "height": 16}],
        "categories": [{"id": 1, "name": "x"}],
    }
    (root / "pool.json").write_text(json.dumps(doc))
    assert list_pool(root / "pool.json", root) == [PoolImage(7, "pool/b.png")]


def test_bad_pools_are_named(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    with pytest.raises(InputError, match=r"missing_folder.*not found"):
        list_pool(tmp_path / "missing_folder", root)
    (tmp_path / "pool.csv").write_text("a.png")
    with pytest.raises(InputError, match=r"pool\.csv.*expected a folder, a \.txt"):
        list_pool(tmp_path / "pool.csv", root)
    outside = _png(tmp_path / "elsewhere" / "x.png", (0, 0, 0))
    (root / "list.txt").write_text(f"{outside}\n")
    with pytest.raises(InputError, match=r"line 1: file_name: .*outside data.image_root"):
        list_pool(root / "list.txt", root)
    (root / "bad.json").write_text(
        json.dumps({"images": [{"id": 1, "file_name": "a.png"}], "categories": []})
    )
    with pytest.raises(InputError, match=r"bad\.json: image id=1: width"):
        list_pool(root / "bad.json", root)
    (root / "twice.txt").write_text("a.png\na.png\n")
    _png(root / "a.png", (0, 0, 0))
    with pytest.raises(InputError, match=r"listed twice"):
        list_pool(root / "twice.txt", root)


# -- dedup and index ---------------------------------------------------------------------------------


def test_identical_files_keep_the_first():
    assert first_of_identical(["a", "b", "a", "c", "b", "a"]) == [None, None, 0, None, 1, 0]


def test_near_duplicates_are_dropped_greedily_in_rank_order():
    angles = np.radians([0.0, 8.0, 16.0, 90.0])  # cos 8° = 0.990, cos 16° = 0.961
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    # row 1 copies row 0; row 2 is near row 1 only, which is dropped, so row 2 stays
    assert near_duplicate_of(vectors, 0.98) == [None, 0, None, None]
    assert near_duplicate_of(vectors, 0.95) == [None, 0, 0, None]
    assert near_duplicate_of(vectors[:0], 0.9) == []


def _clustered(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    x = centres[rng.integers(clusters, size=n)] + 0.3 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_flat_search_is_exact_and_ivf_with_every_cell_equals_it(tmp_path):
    x = _clustered(2000, 16, 20, 0)
    shards = lambda: [x[:700], x[700:1500], x[1500:]]  # noqa: E731
    flat = build_index(shards, 2000, 16, "flat")
    sims, rows = search(flat, x[[5, 1234]], k=3)
    assert rows[:, 0].tolist() == [5, 1234]
    np.testing.assert_allclose(sims[:, 0], 1.0, rtol=1e-5)
    exact = np.argsort(-(x[[5, 1234]] @ x.T), axis=1)[:, :3]
    assert (rows == exact).all()
    ivf = build_index(shards, 2000, 16, "ivf", nlist=16)
    _, ivf_rows = search(ivf, x[:50], k=10, nprobe=16)  # every cell searched: exact
    assert (ivf_rows == search(flat, x[:50], k=10)[1]).all()
    save_index(ivf, tmp_path / "ivf.faiss")
    assert (search(load_index(tmp_path / "ivf.faiss"), x[:50], k=10, nprobe=16)[1] == ivf_rows).all()
    pq = build_index(shards, 2000, 16, "ivfpq", nlist=8, pq_m=4)
    assert search(pq, x[:5], k=4, nprobe=8)[1].shape == (5, 4)
    with pytest.raises(ValueError, match=r"pq_m=5 must divide the embedding dimension 16"):
        build_index(shards, 2000, 16, "ivfpq", nlist=8, pq_m=5)


def test_search_pads_a_pool_smaller_than_k():
    x = np.eye(3, dtype=np.float32)
    sims, rows = search(build_index(lambda: [x], 3, 3, "flat"), x[:1], k=5)
    assert rows.tolist() == [[0, -1, -1, -1, -1]] or rows[0, 0] == 0
    assert rows[0, 3:].tolist() == [-1, -1] and np.isneginf(sims[0, 3:]).all()


def test_auto_index_follows_the_pool_size():
    assert [choose_kind(n, "auto") for n in (10, 1_000_000, 1_000_001, 10_000_001)] == [
        "flat",
        "flat",
        "ivf",
        "ivfpq",
    ]
    assert choose_kind(10, "ivfpq") == "ivfpq"


# -- the embedding cache ------------------------------------------------------------------------------


def test_pool_embeddings_are_cached_in_shards_resume_and_skip_bad_files(tmp_path):
    root = tmp_path / "images"
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    for k, c in enumerate(colours):
        _png(root / f"p{k}.png", c)
    (root / "p5.png").write_bytes(b"not a png")
    pool = list_pool(root, root)
    calls = []
    base = mean_colour_embedder()

    def counting(images: torch.Tensor) -> torch.Tensor:
        calls.append(len(images))
        return base.fn(images)

    embedder = Embedder("counting", 8, counting, torch.device("cpu"))
    cache = tmp_path / "cache"
    emb = embed_pool(pool, root, embedder, cache, batch_size=2, shard_size=4, show_progress=False)
    assert sum(calls) == 5 and len(emb) == 5 and emb.dim == 3
    assert emb.pool_index.tolist() == [0, 1, 2, 3, 4]
    assert [(s.image_id, s.file) for s in emb.skipped] == [(6, "p5.png")]
    assert emb.sizes[0] == (16, 16)
    expected = F.normalize(torch.tensor(colours, dtype=torch.float32), dim=1).numpy()
    np.testing.assert_allclose(emb.rows(np.array([4, 0, 3])), expected[[4, 0, 3]], atol=1e-6)
    # a run stopped after the first shard: only the second is embedded again
    (cache / "shard_00001.json").unlink()
    calls.clear()
    again = embed_pool(pool, root, embedder, cache, batch_size=2, shard_size=4, show_progress=False)
    assert sum(calls) == 1 and again.pool_index.tolist() == [0, 1, 2, 3, 4]


# -- the stage end to end -----------------------------------------------------------------------------


def _dataset(tmp_path: Path) -> Path:
    """train.json: class 1 (rare) red squares, class 2 (frequent) blue squares on black; val.json
    one blue image; a pool folder whose mean colours give known cosines to the red query (1, 0, 0)."""
    root = tmp_path / "images"
    cats = [
        {"id": 1, "name": "red_square", "frequency": "r", "image_count": 1, "instance_count": 1},
        {"id": 2, "name": "blue_square", "frequency": "f", "image_count": 1, "instance_count": 1},
    ]

    def labeled(name: str, colour: tuple[int, int, int], cid: int, iid: int) -> tuple[dict, dict]:
        im = Image.new("RGB", (32, 32), (0, 0, 0))
        im.paste(colour, (8, 8, 24, 24))
        (root / "train").mkdir(parents=True, exist_ok=True)
        im.save(root / name)
        image = {"id": iid, "file_name": name, "width": 32, "height": 32}
        seg = [[8.0, 8.0, 24.0, 8.0, 24.0, 24.0, 8.0, 24.0]]
        ann = {"id": iid, "image_id": iid, "category_id": cid, "bbox": [8.0, 8.0, 16.0, 16.0]}
        return image, {**ann, "area": 256.0, "segmentation": seg, "iscrowd": 0}

    red, red_ann = labeled("train/red.png", (255, 0, 0), 1, 1)
    blue, blue_ann = labeled("train/blue.png", (0, 0, 255), 2, 2)
    doc = {"images": [red, blue], "annotations": [red_ann, blue_ann], "categories": cats}
    (tmp_path / "train.json").write_text(json.dumps(doc))
    val = {
        "images": [{**blue, "id": 3}],
        "annotations": [{**blue_ann, "id": 3, "image_id": 3}],
        "categories": cats,
    }
    (tmp_path / "val.json").write_text(json.dumps(val))
    pool = root / "pool"
    _png(pool / "p1.png", (200, 0, 0))  # cosine 1 with the query
    _png(pool / "p2.png", (200, 60, 0))  # 0.958
    _png(pool / "p3.png", (200, 0, 100))  # 0.894: sixth, past k = 5
    (pool / "p4.png").write_bytes((pool / "p1.png").read_bytes())  # identical to p1
    _png(pool / "p5.png", (201, 1, 0))  # a near-duplicate of p1 (cosine 0.99999)
    _png(pool / "p6.png", (0, 0, 200))  # blue: cosine 0
    (pool / "p7.png").write_bytes((root / "train" / "red.png").read_bytes())  # a labeled image's copy
    (pool / "p8.png").write_bytes(b"\x89PNG truncated")  # unreadable
    return tmp_path


def _config(folder: Path, **mining) -> Config:
    return Config.model_validate(
        {
            "data": {
                "train_json": str(folder / "train.json"),
                "val_json": str(folder / "val.json"),
                "image_root": str(folder / "images"),
                "max_skipped_fraction": 0.2,
            },
            "train": {"device": "cpu", "max_steps": 1},
            "run": {"run_dir": str(folder / "run")},
            "mining": {"pool": str(folder / "images" / "pool"), "k": 5, "batch_size": 3, **mining},
        }
    )


def test_mine_finds_the_rare_class_and_removes_every_kind_of_duplicate(tmp_path, monkeypatch):
    folder = _dataset(tmp_path)
    monkeypatch.setattr(mine_module, "make_embedder", lambda config: mean_colour_embedder())
    result = mine_module.mine(_config(folder), tmp_path / "out", log=lambda s: None, show_progress=False)
    mined = json.loads(result.unlabeled_json.read_text())
    assert [(im["id"], im["file_name"]) for im in mined["images"]] == [(1, "pool/p1.png"), (2, "pool/p2.png")]
    assert mined["annotations"] == [] and [c["id"] for c in mined["categories"]] == [1, 2]
    assert mined["images"][0]["width"] == 16 and mined["images"][0]["neg_category_ids"] == []
    s = result.summary
    assert (s["queries"], s["pool_images"], s["embedded"], s["found"], s["kept"]) == (1, 8, 7, 5, 2)
    assert s["removed"] == {"labeled": 1, "identical": 1, "near_duplicate": 1, "over_budget": 0}
    assert s["skipped_images"]["images"][0]["file"] == "pool/p8.png"
    assert s["groups"]["r"] == {"classes": 1, "queries": 1, "images_found": 5, "images_kept": 2}
    assert s["groups"]["f"]["classes"] == 0
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())["images"]
    assert prov[1]["query_classes"][0]["name"] == "red_square"
    assert prov[0]["similarity"] == pytest.approx(1.0, abs=1e-6)
    assert prov[1]["similarity"] == pytest.approx(200 / np.hypot(200, 60), abs=1e-4)
    # a budget keeps the best; the cached shards and index are reused
    capped = mine_module.mine(
        _config(folder, max_images=1), tmp_path / "out", log=lambda s: None, show_progress=False
    )
    assert capped.summary["kept"] == 1 and capped.summary["removed"]["over_budget"] == 1
    assert capped.summary["seconds"]["embed_pool"] < 5
    # querying the frequent class instead finds the blue image first
    blue = mine_module.mine(
        _config(folder, query_classes=["blue_square"]),
        tmp_path / "blue",
        log=lambda s: None,
        show_progress=False,
    )
    assert json.loads(blue.unlabeled_json.read_text())["images"][0]["file_name"] == "pool/p6.png"


def test_mine_refuses_unknown_classes_and_too_many_unreadable_images(tmp_path, monkeypatch):
    folder = _dataset(tmp_path)
    monkeypatch.setattr(mine_module, "make_embedder", lambda config: mean_colour_embedder())
    with pytest.raises(InputError, match=r"mining.query_classes: no category named"):
        mine_module.mine(_config(folder, query_classes=["nope"]), tmp_path / "o", show_progress=False)
    config = Config.model_validate(
        {
            **_config(folder).model_dump(mode="json"),
            "data": {**_config(folder).data.model_dump(), "max_skipped_fraction": 0.1},
        }
    )
    with pytest.raises(InputError, match=r"(?s)p8.png: not an image.*data.max_skipped_fraction"):
        mine_module.mine(config, tmp_path / "o", log=lambda s: None, show_progress=False)
    assert not (tmp_path / "o" / "unlabeled.json").exists()


def test_mine_stage_runs_once_and_its_output_is_the_student_pool(tmp_path, monkeypatch):
    from tailteacher.data.lvis_json import load_lvis
    from tailteacher.pipeline.run import mine_stage

    folder = _dataset(tmp_path)
    monkeypatch.setattr(mine_module, "make_embedder", lambda config: mean_colour_embedder())
    lines: list[str] = []
    first = mine_stage(_config(folder), tmp_path / "run" / "mining", lines.append)
    again = mine_stage(_config(folder), tmp_path / "run" / "mining", lines.append)
    assert again.hash == first.hash and "skipped" in lines[-1]
    pool = load_lvis(first.result["unlabeled_json"], folder / "images", require_annotations=False)
    assert sorted(pool.images) == [1, 2]


def test_cli_names_a_missing_pool(tmp_path, capsys):
    folder = _dataset(tmp_path)
    cfg = _config(folder).model_dump(mode="json")
    del cfg["mining"]
    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["mine", str(tmp_path / "c.yaml"), "--pool", str(tmp_path / "no_such_folder")]) == 2
    err = capsys.readouterr().err
    assert "no_such_folder" in err and "not found" in err and "Traceback" not in err
    assert main(["mine", str(tmp_path / "c.yaml")]) == 2
    assert "no mining section" in capsys.readouterr().err


def test_a_config_without_mining_dumps_as_before(tmp_path):
    cfg = _config(_dataset(tmp_path)).model_dump(mode="json")
    del cfg["mining"]
    assert "mining" not in Config.model_validate(cfg).model_dump(mode="json")
    with pytest.raises(ValueError, match=r"timm_model and mining.timm_checkpoint"):
        Config.model_validate({**cfg, "mining": {"pool": "x", "embedder": "timm"}})


def test_run_pipeline_mines_before_the_teacher_and_hands_on_the_mined_pool(tmp_path, monkeypatch):
    from tailteacher.pipeline import run as run_module

    folder = _dataset(tmp_path)
    monkeypatch.setattr(mine_module, "make_embedder", lambda config: mean_colour_embedder())
    seen = {}

    class Stop(Exception):
        pass

    def teacher(cfg, *args, **kwargs):
        seen["config"] = cfg
        raise Stop

    monkeypatch.setattr(run_module, "teacher_stage", teacher)
    raw = _config(folder).model_dump(mode="json")
    raw["data"]["heldout_json"] = raw["data"]["val_json"]  # no split stage
    raw["targets"] = {"kind": "onehot"}  # no prototypes stage
    with pytest.raises(Stop):
        run_module.run_pipeline(Config.model_validate(raw), log=lambda s: None)
    cfg = seen["config"]
    assert cfg.mining is None
    assert cfg.data.unlabeled_json == str(tmp_path / "run" / "mining" / "unlabeled.json")
