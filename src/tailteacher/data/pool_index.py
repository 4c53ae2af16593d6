"""An unlabeled pool as columns of numbers on disk, memory-mapped by every process and worker.

Read as ``load_lvis`` reads it, a pool json costs one Python dict per image (≈ 0.5 kB) in every
process that holds it, and each DataLoader worker forked from such a process copies those pages
back one by one as reference counts and the garbage collector write to them. Here the json is
read once, streamed record by record (``json_stream``), checked with the ground-truth reader's
own per-record rules and messages (``lvis_json``, D90), and kept as five arrays sorted by image id
(the order ``LvisDataset`` gives). Written to a folder (``write_index``), they are opened by
``np.load(mmap_mode="r")``: every rank and worker on a node reads the same page-cache pages, and
a pickled index (a spawned worker) carries only its folder.

Columns (N images, sorted by id):
    ids      [N] int64
    heights  [N] int32, widths [N] int32 (pixels)
    offsets  [N + 1] int64: image k's path is names[offsets[k]:offsets[k + 1]]
    names    [offsets[N]] uint8: the UTF-8 paths under the image root (``image_relpath``)

A folder holds them as ``<column>.npy`` and ``index.json`` (format, source json, its SHA-256,
image count), written last. Files the streamed reader does not follow (another encoding, NaN,
invalid json) are read whole by ``load_lvis``, which gives the same images or the same error.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import atomic_write_json, read_json
from .json_stream import NotStreamable, members
from .lvis_json import (
    LvisData,
    Report,
    _side,
    check_annotations,
    check_categories,
    check_federated_lists,
    check_image_record,
    image_relpath,
    load_lvis,
)

#: Version of the folder layout; a folder of another one is rebuilt.
FORMAT = 1
COLUMNS = ("ids", "heights", "widths", "offsets", "names")
_FEDERATED = ("neg_category_ids", "not_exhaustive_category_ids")
_PATHS = "surrogatepass"  # json allows lone surrogates in strings; such a path round-trips


@dataclass(frozen=True, eq=False)
class PoolIndex:
    """The images of an unlabeled pool, sorted by id (columns: module doc).

    ``source`` is the json it was read from (named in messages); ``folder`` the folder its
    columns are memory-mapped from, or None when they are held in memory.
    """

    source: Path
    ids: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    offsets: np.ndarray
    names: np.ndarray
    folder: Path | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def relpath(self, k: int) -> str:
        """Image k's path under the image root."""
        start, end = int(self.offsets[k]), int(self.offsets[k + 1])
        return bytes(self.names[start:end]).decode("utf-8", _PATHS)

    def __reduce__(self) -> tuple[Any, ...]:
        if self.folder is not None:  # a worker maps the folder again instead of receiving a copy
            return (open_index, (self.folder,))
        return (PoolIndex, (self.source, self.ids, self.heights, self.widths, self.offsets, self.names))


class _Columns:
    """Image records checked one at a time and kept as compact columns (file order)."""

    def __init__(self, file: str) -> None:
        self.rep = Report(file)
        self.seen: set[int] = set()
        self.ids, self.heights, self.widths = array("q"), array("i"), array("i")
        self.ends = array("q")
        self.names = bytearray()
        self.federated: dict[int, dict[str, Any]] = {}

    def add(self, k: int, img: object) -> None:
        iid = check_image_record(self.rep, k, img, self.seen, "train")
        if iid is None:
            return
        assert isinstance(img, dict)
        self.seen.add(iid)
        self.ids.append(iid)
        self.heights.append(_side(img.get("height")) or 0)  # 0: reported already
        self.widths.append(_side(img.get("width")) or 0)
        self.names += image_relpath(img).encode("utf-8", _PATHS)
        self.ends.append(len(self.names))
        lists = {key: img[key] for key in _FEDERATED if key in img}
        if lists:
            self.federated[iid] = lists

    def index(self, source: Path) -> PoolIndex:
        """The columns sorted by id."""
        ids = np.frombuffer(self.ids, dtype=np.int64) if self.ids else np.zeros(0, np.int64)
        ends = np.frombuffer(self.ends, dtype=np.int64) if self.ends else np.zeros(0, np.int64)
        heights = np.asarray(self.heights, dtype=np.int32)
        widths = np.asarray(self.widths, dtype=np.int32)
        names = np.frombuffer(self.names, dtype=np.uint8)  # a view: no copy of the paths
        order = np.argsort(ids, kind="stable")
        starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        lengths = (ends - starts)[order]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        if ids.size and not np.all(order == np.arange(ids.size)):
            ordered = np.empty_like(names)
            for start, end, at in zip(
                starts[order].tolist(), ends[order].tolist(), offsets[:-1].tolist(), strict=True
            ):
                ordered[at : at + end - start] = names[start:end]
            names = ordered
        return PoolIndex(source, ids[order].copy(), heights[order], widths[order], offsets, names)


class _Sizes(Mapping[int, Mapping[str, int]]):
    """``{id: {"height", "width"}}`` over sorted columns, for the annotation checks."""

    def __init__(self, index: PoolIndex) -> None:
        self.index = index

    def __getitem__(self, iid: int) -> Mapping[str, int]:
        k = int(np.searchsorted(self.index.ids, iid))
        if k < len(self.index) and int(self.index.ids[k]) == iid:
            return {"height": int(self.index.heights[k]), "width": int(self.index.widths[k])}
        raise KeyError(iid)

    def __iter__(self) -> Iterator[int]:
        return iter(self.index.ids.tolist())

    def __len__(self) -> int:
        return len(self.index)


def read_pool(path: str | os.PathLike[str]) -> PoolIndex:
    """Read and check an unlabeled pool json (images; categories; annotations optional) into
    columns held in memory, with one image record parsed at a time.

    The images kept, their order and every problem reported are ``load_lvis(path,
    require_annotations=False)``'s (tests/test_pool_index.py).

    Raises:
        InputError: listing every problem found, each with file, record and field.
    """
    p = Path(path)
    constants: list[str] = []

    def constant(name: str) -> float:
        constants.append(name)
        return float(name)

    present: set[str] = set()
    images = _Columns(str(p))
    categories: Any = []
    annotations: Any = []
    try:
        for key, value in members(p, stream=("images",), parse_constant=constant):
            present.add(key)
            if key == "images":
                images = _Columns(str(p))  # a key given twice: the last value counts, as json.load
                for k, img in enumerate(value):
                    images.add(k, img)
            elif key == "categories":
                categories = value
            elif key == "annotations":
                annotations = value
    except (NotStreamable, OSError):
        return index_of(load_lvis(p, require_annotations=False))
    if constants:  # load_lvis names every NaN / Infinity, or the problems that come first
        return index_of(load_lvis(p, require_annotations=False))
    rep = Report(str(p))
    for key in ("images", "categories"):
        if key not in present:
            rep.add("-", key, "missing key")
    rep.problems.extend(images.rep.problems)
    index = images.index(p)
    category_ids = {int(c["id"]) for c in check_categories(rep, categories, "train")}
    if annotations != []:
        check_annotations(rep, annotations, _Sizes(index), category_ids, "train")
    check_federated_lists(rep, images.federated, category_ids, "train")
    if rep.problems:
        raise InputError(rep.problems)
    return index


def index_of(data: LvisData) -> PoolIndex:
    """The columns of a data set read whole (``load_lvis``), images sorted by id."""
    ids = sorted(data.images)
    names = [image_relpath(data.images[i]).encode("utf-8", _PATHS) for i in ids]
    lengths = np.array([len(n) for n in names], dtype=np.int64)
    return PoolIndex(
        data.path,
        np.array(ids, dtype=np.int64).reshape(-1),
        np.array([int(data.images[i]["height"]) for i in ids], dtype=np.int32).reshape(-1),
        np.array([int(data.images[i]["width"]) for i in ids], dtype=np.int32).reshape(-1),
        np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        np.frombuffer(b"".join(names), dtype=np.uint8),
    )


def write_index(index: PoolIndex, folder: Path, sha256: str) -> None:
    """Write ``index``'s columns to ``folder`` (replaced whole: a reader sees the old folder or
    the new one, never part of one; ``index.json`` last inside it)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        for name in COLUMNS:
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(index, name)), allow_pickle=False)
        meta = {"format": FORMAT, "source": str(index.source), "sha256": sha256, "images": len(index)}
        atomic_write_json(tmp / "index.json", meta, indent=1)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def open_index(folder: Path) -> PoolIndex:
    """The columns of ``folder`` (``write_index``), memory-mapped read-only.

    Raises:
        InputError: a missing or unreadable ``index.json``, another format, or columns whose
            lengths disagree (a folder damaged after it was written).
    """
    meta = read_json(folder / "index.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(
            f"{folder / 'index.json'}: expected a pool index of format {FORMAT}; remove the folder"
        )
    try:
        cols = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in COLUMNS}
    except (OSError, ValueError) as err:
        raise InputError(f"{folder}: a pool index column cannot be read ({err}); remove the folder") from None
    n = int(meta.get("images", -1))
    lengths = [
        cols["ids"].shape[0],
        cols["heights"].shape[0],
        cols["widths"].shape[0],
        cols["offsets"].shape[0] - 1,
    ]
    if any(m != n for m in lengths) or int(cols["offsets"][-1]) != cols["names"].shape[0]:
        raise InputError(f"{folder}: pool index columns of unequal lengths; remove the folder")
    return PoolIndex(
        Path(str(meta["source"])),
        cols["ids"],
        cols["heights"],
        cols["widths"],
        cols["offsets"],
        cols["names"],
        folder=folder,
    )


def index_folder(path: str | os.PathLike[str], cache: Path, sha256: str) -> Path:
    """The folder under ``cache`` holding ``path``'s index, read and written when missing.

    ``sha256`` is the json's (``pipeline.stages.file_hash``): the folder is ``cache/<its first
    16 hex digits>``, so a changed pool gets a new index; folders of other pools and temp folders
    of a killed write are removed when one is written. Call it in one process (rank 0).

    Raises:
        InputError: the json's problems (``read_pool``).
    """
    folder = cache / sha256[:16]
    meta = folder / "index.json"
    if meta.is_file():
        try:
            done = read_json(meta)
        except InputError:
            done = None
        if isinstance(done, dict) and done.get("format") == FORMAT and done.get("sha256") == sha256:
            return folder
    index = read_pool(path)
    if cache.is_dir():
        for old in cache.iterdir():
            if old != folder:
                shutil.rmtree(old) if old.is_dir() else old.unlink()
    write_index(index, folder, sha256)
    return folder
