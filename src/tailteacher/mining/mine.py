"""Stage "mine" (the paper's §4.1): the student's unlabeled images picked from a pool.

1. queries: every labeled instance of the chosen classes (``mining.query_groups``, rare by default,
   or ``mining.query_classes``) in ``data.train_json``, its crop embedded (``embed``);
2. the pool (``pool``) embedded into cached shards; unreadable images skipped and listed;
3. Faiss: the ``k`` nearest pool images of each query by cosine (``index``), the index saved
   beside the shards and reused;
4. duplicates removed (``dedup``): images of the labeled, held-out and validation sets, identical
   files, near-duplicates;
5. the rest ranked by their best similarity to any query, at most ``max_images`` kept.

Writes into the stage folder: ``unlabeled.json`` (LVIS image list, the format of ``data.unlabeled_json``;
categories of the training set), ``provenance.json`` (per image: the query classes that found it,
with each class's best cosine, and the best), ``mining.json`` (settings, counts, removed per reason,
a summary per class group, skipped images, seconds per step) and, with ``mining.truth_json``,
``unlabeled_truth.json`` (the mined images' truth) with quality figures in ``mining.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, MiningConfig
from ..data.frequency import frequency_groups
from ..data.lvis_json import LvisData, image_relpath, load_lvis
from ..data.skips import check_skipped
from ..errors import InputError, Problem
from ..io import atomic_write_json
from .dedup import first_of_identical, labeled_files, near_duplicate_of
from .embed import Embedder, backbone_embedder, cache_key, embed_pool, embed_queries, timm_embedder
from .index import build_index, choose_kind, load_index, save_index, search
from .pool import list_pool
from .quality import truth_figures

Log = Callable[[str], None]


@dataclass(frozen=True)
class MiningResult:
    """The mined ``unlabeled_json`` and the summary written to ``mining.json``."""

    unlabeled_json: Path
    summary: dict[str, Any]


def query_category_ids(train: LvisData, mining: MiningConfig) -> set[int]:
    """Category ids whose instances are the queries: ``query_classes`` by name, else the
    ``query_groups`` (the file's frequency, else counted on ``train``).

    Raises:
        InputError: an unknown class name, or no class in the groups.
    """
    if mining.query_classes is not None:
        by_name = {str(c.get("name")): int(c["id"]) for c in train.categories}
        unknown = [n for n in mining.query_classes if n not in by_name]
        if unknown:
            raise InputError(
                [
                    Problem(
                        str(train.path), "categories", "mining.query_classes", f"no category named {unknown}"
                    )
                ]
            )
        return {by_name[n] for n in mining.query_classes}
    ids = {cid for cid, g in frequency_groups(train).items() if g in mining.query_groups}
    if not ids:
        message = f"no category in the groups {mining.query_groups}"
        raise InputError([Problem(str(train.path), "categories", "mining.query_groups", message)])
    return ids


def make_embedder(config: Config) -> Embedder:
    """The configured feature extractor on ``train.device``."""
    from ..engine import resolve_device
    from ..engine.distributed import current_dist_info

    m = config.mining
    assert m is not None
    device = resolve_device(config.train, current_dist_info())
    size = m.image_size or config.targets.crop_size
    if m.embedder == "timm":
        assert m.timm_model is not None and m.timm_checkpoint is not None
        return timm_embedder(m.timm_model, m.timm_checkpoint, size, device)
    return backbone_embedder(config, size, device)


def _group_summary(
    queries: np.ndarray, found: dict[int, dict[int, float]], kept: list[int], groups: dict[int, str]
) -> dict[str, dict[str, int]]:
    out = {}
    for g in "rcf":
        cats = {int(c) for c in set(queries.tolist()) if groups.get(int(c)) == g}
        hit = {r for r, per in found.items() if cats & per.keys()}
        out[g] = {
            "classes": len(cats),
            "queries": int(sum(1 for c in queries.tolist() if int(c) in cats)),
            "images_found": len(hit),
            "images_kept": sum(1 for r in kept if r in hit),
        }
    return out


def mine(config: Config, out: Path, log: Log = print, show_progress: bool = True) -> MiningResult:
    """Run the mining of ``config.mining`` into the folder ``out`` (see the module's doc).

    Raises:
        InputError: no mining section, a bad pool or weights file, no query instance, too many
            unreadable images (``data.max_skipped_fraction``), or nothing left to keep.
    """
    m = config.mining
    if m is None:
        raise InputError("the config has no mining section (set at least mining.pool; docs/engine.md)")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    root = Path(config.data.image_root)
    train = load_lvis(config.data.train_json, root)
    groups: dict[int, str] = dict(frequency_groups(train))
    ids = query_category_ids(train, m)
    pool = list_pool(m.pool, root)  # a bad pool fails before any model is built
    embedder = make_embedder(config)
    queries, query_cats, qskipped, qread = embed_queries(train, ids, embedder, m.batch_size)
    check_skipped(qskipped, qread, config.data.max_skipped_fraction, config.data.train_json)
    seconds["queries"] = time.perf_counter() - t0
    log(f"[mine] {len(queries)} query crops of {len(ids)} classes; pool of {len(pool)} images")

    t1 = time.perf_counter()
    cache = out / "cache" / cache_key(embedder, pool, m.shard_size)
    emb = embed_pool(
        pool, root, embedder, cache, m.batch_size, m.shard_size, config.data.workers, show_progress
    )
    skips = check_skipped(emb.skipped, len(pool), config.data.max_skipped_fraction, m.pool)
    if len(emb) == 0:
        raise InputError([Problem(m.pool, "images", "mining.pool", "no image could be read")])
    seconds["embed_pool"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    kind = choose_kind(len(emb), m.index)
    name = "index_flat.faiss" if kind == "flat" else f"index_{kind}_{m.nlist or 'auto'}_{m.pq_m}.faiss"
    index_file = cache / name
    if index_file.is_file():
        index = load_index(index_file)
    else:
        try:
            index = build_index(emb.iter_shards, len(emb), emb.dim, kind, m.nlist, m.pq_m, config.train.seed)
        except ValueError as err:
            raise InputError(str(err)) from None
        save_index(index, index_file)
    seconds["index"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    sims, rows = search(index, queries, m.k, m.nprobe)
    found: dict[int, dict[int, float]] = {}  # vector row -> {query category id: best cosine}
    for q in range(rows.shape[0]):
        cid = int(query_cats[q])
        for sim, row in zip(sims[q].tolist(), rows[q].tolist(), strict=True):
            if row < 0:
                continue
            per = found.setdefault(int(row), {})
            per[cid] = max(per.get(cid, -1.0), float(sim))
    best = {r: max(per.values()) for r, per in found.items()}
    ranked = sorted(found, key=lambda r: (-best[r], int(emb.pool_index[r])))
    seconds["search"] = time.perf_counter() - t3

    t4 = time.perf_counter()
    sets = [
        load_lvis(p, root, require_annotations=False)
        for p in (config.data.train_json, config.data.heldout_json, config.data.val_json)
        if p
    ]
    names, hashes = labeled_files(sets)
    removed = {"labeled": 0, "identical": 0, "near_duplicate": 0}
    files = [pool[int(emb.pool_index[r])].file_name for r in ranked]
    fresh = [r for r, f in zip(ranked, files, strict=True) if f not in names and emb.sha256[r] not in hashes]
    removed["labeled"] = len(ranked) - len(fresh)
    same = first_of_identical([emb.sha256[r] for r in fresh])
    unique = [r for r, s in zip(fresh, same, strict=True) if s is None]
    removed["identical"] = len(fresh) - len(unique)
    near = near_duplicate_of(emb.rows(np.asarray(unique, dtype=np.int64)), m.near_duplicate_cosine)
    kept = [r for r, s in zip(unique, near, strict=True) if s is None]
    removed["near_duplicate"] = len(unique) - len(kept)
    over_budget = max(0, len(kept) - m.max_images) if m.max_images is not None else 0
    kept = kept[: m.max_images] if m.max_images is not None else kept
    seconds["dedup"] = time.perf_counter() - t4
    if not kept:
        raise InputError([Problem(m.pool, "images", "mining.pool", "every image found was a duplicate")])

    names_of = {int(c["id"]): str(c.get("name", c["id"])) for c in train.categories}
    images, provenance = [], []
    for r in kept:
        image = pool[int(emb.pool_index[r])]
        w, h = emb.sizes[r]
        images.append(
            {
                "id": image.id,
                "file_name": image.file_name,
                "width": w,
                "height": h,
                "neg_category_ids": [],
                "not_exhaustive_category_ids": [],
            }
        )
        by_class = sorted(found[r].items(), key=lambda kv: (-kv[1], kv[0]))
        provenance.append(
            {
                "id": image.id,
                "file_name": image.file_name,
                "similarity": round(best[r], 6),
                "query_classes": [
                    {"id": cid, "name": names_of.get(cid, str(cid)), "similarity": round(s, 6)}
                    for cid, s in by_class
                ],
            }
        )
    summary: dict[str, Any] = {
        "pool": m.pool,
        "embedder": embedder.key,
        "index": kind,
        "k": m.k,
        "nprobe": m.nprobe if kind != "flat" else None,
        "query_classes": len(ids),
        "queries": len(queries),
        "pool_images": len(pool),
        "embedded": len(emb),
        "skipped_images": skips,
        "found": len(found),
        "removed": {**removed, "over_budget": over_budget},
        "kept": len(kept),
        "groups": _group_summary(query_cats, found, kept, groups),
    }
    info = {"description": f"mined by tailteacher mine from {m.pool}", "query_classes": sorted(ids)}
    doc = {
        "info": info,
        "licenses": [],
        "images": images,
        "annotations": [],
        "categories": train.raw["categories"],
    }
    if m.truth_json is not None:
        summary["truth"] = _write_truth(Path(m.truth_json), root, images, out, groups)
    summary["seconds"] = {k: round(v, 2) for k, v in {**seconds, "total": time.perf_counter() - t0}.items()}
    atomic_write_json(out / "provenance.json", {"images": provenance})
    atomic_write_json(out / "mining.json", summary, indent=2)
    atomic_write_json(out / "unlabeled.json", doc)  # last: its presence means the rest is there
    g = summary["groups"]
    log(
        f"[mine] kept {len(kept)} of {len(found)} images found (removed {removed}, over budget "
        f"{over_budget}); found by r/c/f queries: {g['r']['images_kept']}/{g['c']['images_kept']}/"
        f"{g['f']['images_kept']}; {summary['seconds']['total']} s -> {out / 'unlabeled.json'}"
    )
    return MiningResult(out / "unlabeled.json", summary)


def _write_truth(
    truth_json: Path, root: Path, images: list[dict[str, Any]], out: Path, groups: dict[int, str]
) -> dict[str, Any]:
    """``out/unlabeled_truth.json``: the mined images' annotations from ``truth_json`` (matched
    by file), with the mined ids; returns ``quality.truth_figures`` of the mined set and the pool."""
    truth = load_lvis(truth_json, root)
    by_file = {image_relpath(im): iid for iid, im in truth.images.items()}
    mined_of = {by_file[im["file_name"]]: im["id"] for im in images if im["file_name"] in by_file}
    anns = [
        {**a, "image_id": mined_of[int(a["image_id"])]}
        for a in truth.annotations
        if int(a["image_id"]) in mined_of
    ]
    info = {"description": f"truth of the mined images, from {truth_json}; for measuring only"}
    doc = {
        "info": info,
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": truth.raw["categories"],
    }
    atomic_write_json(out / "unlabeled_truth.json", doc)
    return {
        "file": str(truth_json),
        "mined": truth_figures(truth, mined_of, groups),
        "pool": truth_figures(truth, truth.images, groups),
    }
