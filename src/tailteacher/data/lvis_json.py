"""LVIS v1 / COCO instance json: load, validate (every problem, not just the first), index.

The one reader of ground truth: training, splitting, prediction and the evaluator
(``evaluation.ground_truth``) all read through ``load_lvis``, so a record is valid or not by one
rule wherever it is read (D90). A field that is present is always checked the same way; what a
use *requires* differs (``purpose``): training and splitting read the images, so each image needs
a safe ``file_name`` (or ``coco_url``) and each annotation a ``bbox``; the evaluator needs what
LVISEval reads, so each category needs its ``frequency``, each image its federated lists
(``neg_category_ids``, ``not_exhaustive_category_ids``) and each annotation its ``area``.

A data set opens in one pass over its records, whatever its size; image files are checked only
when asked (``check_images=True``), so 100k-image files open fast. Every problem names the file,
the record and the field, and says what was expected.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeGuard
from urllib.parse import urlsplit

from ..errors import InputError, Problem
from ..io import read_json
from ..numbers import is_finite_number
from .segmentation import MAX_IMAGE_SIDE, segmentation_problem

# A box may reach this far past the image border (pixels) before it is an error: annotation
# tools round polygon vertices, and LVIS has boxes that end at width + 0.5.
BOX_TOLERANCE = 1.0

#: What the caller does with the file, which decides the fields it requires (module doc).
Purpose = Literal["train", "evaluate"]
FREQUENCY_GROUPS = ("r", "c", "f")  # LVIS: rare ≤ 10 training images, common 11–100, frequent > 100


@dataclass
class LvisData:
    """A validated LVIS/COCO instance file.

    ``categories`` are sorted by id; ``category_ids[k]`` is the id of contiguous class k (the
    index every tensor in the project uses), ``class_index[id]`` the reverse. Sorting by id, not
    keeping the file's order, makes class k the same class here and in ``tailteacher.evaluation``
    (whose per-class Δ feeds Eq. 5) whatever order a file lists its categories in.
    """

    path: Path
    image_root: Path | None
    images: dict[int, dict[str, Any]]
    annotations: list[dict[str, Any]]
    categories: list[dict[str, Any]]
    raw: dict[str, Any]  # the file as read, every field kept (for writing subsets of it)
    category_ids: list[int] = field(init=False)
    class_index: dict[int, int] = field(init=False)
    anns_by_image: dict[int, list[dict[str, Any]]] = field(init=False)

    def __post_init__(self) -> None:
        self.category_ids = [int(c["id"]) for c in self.categories]
        self.class_index = {cid: k for k, cid in enumerate(self.category_ids)}
        by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for ann in self.annotations:
            by_image[int(ann["image_id"])].append(ann)
        self.anns_by_image = dict(by_image)

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    @cached_property
    def _real_root(self) -> Path:
        """The image root with its links resolved, once (``image_path`` runs per image read)."""
        assert self.image_root is not None
        return self.image_root.resolve()

    def image_path(self, image: dict[str, Any]) -> Path:
        """Path of an image's file under the image root, which it may not leave
        (``resolve_image_path``).

        Raises:
            InputError: no image root, or the resolved file lies outside the resolved root.
        """
        if self.image_root is None:
            raise InputError(f"{self.path}: no image root given; pass the folder that holds the images")
        return resolve_image_path(
            self.image_root, self._real_root, image_relpath(image), self.path, image.get("id")
        )


def resolve_image_path(root: Path, real_root: Path, relpath: str, source: Path, image_id: object) -> Path:
    """``root / relpath``, refused when its target, links resolved, lies outside ``real_root``.

    The record's path was validated relative without ``..`` when the file was read; here its
    target is resolved too, so a symbolic link inside the root that points outside it is
    refused (D64: link the root itself, or name the real folder as the root).

    Raises:
        InputError: naming ``source`` (the json), the image id and ``file_name``.
    """
    path = root / relpath
    real = path.resolve()
    if not real.is_relative_to(real_root):
        message = f"{path} resolves to {real}, outside the image root {real_root} (a symbolic link)"
        raise InputError([Problem(str(source), f"image id={image_id}", "file_name", message)])
    return path


def image_relpath(image: dict[str, Any]) -> str:
    """An image record's path under the image root: ``file_name``, else COCO's layout from ``coco_url``.

    LVIS v1 records carry no ``file_name`` but a ``coco_url`` such as
    ``http://images.cocodataset.org/train2017/000000391895.jpg``; the image lies in that folder of
    the COCO 2017 images (LVIS val draws from both ``train2017`` and ``val2017``), so the path kept
    is the URL's last two parts, ``train2017/000000391895.jpg``, as detectron2's LVIS loader reads
    it. ``""`` when the record has neither.
    """
    name = image.get("file_name")
    if isinstance(name, str) and name:
        return name
    url = image.get("coco_url")
    if isinstance(url, str) and url:
        parts = [part for part in PurePosixPath(urlsplit(url).path).parts if part != "/"]
        return "/".join(parts[-2:])
    return ""


def is_id(v: object) -> TypeGuard[int]:
    """An integer id that numpy can hold (int64): 2**64 is no id (it overflowed the evaluator's
    arrays)."""
    return isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63


def _side(v: object) -> int | None:
    """An image side in pixels: a positive whole number ≤ MAX_IMAGE_SIDE (640 or 640.0), else None."""
    if not is_finite_number(v) or not 0 < v <= MAX_IMAGE_SIDE or int(v) != v:
        return None
    return int(v)


class Report:
    """The problems found in one file, in the order found."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, record: str, field_: str, message: str) -> None:
        self.problems.append(Problem(self.file, record, field_, message))


def _check_path(name: str) -> str | None:
    """Why a relative image path is unsafe, or None."""
    if not name:
        return "expected a non-empty file_name (or a coco_url)"
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return f"expected a path relative to the image root, got absolute {name!r}"
    if ".." in p.parts:
        return f"expected a path inside the image root, got {name!r} (contains '..')"
    return None


def _size(img: Mapping[str, Any]) -> tuple[int, int] | None:
    """An image record's (height, width) when both are valid, else None (reported on the image)."""
    h, w = _side(img.get("height")), _side(img.get("width"))
    return (h, w) if h is not None and w is not None else None


def check_image_record(
    rep: Report, k: int, img: object, seen: Container[int], purpose: Purpose
) -> int | None:
    """Check ``images[k]``; its id when it is kept (the first record with a valid id), else None.

    A kept record's size and path problems are reported but do not drop it; a record without a
    valid id, or with one in ``seen``, is reported and dropped. One rule for ``load_lvis`` and
    the pool's streamed reader (``pool_index``), so both report the same problems in one order.
    """
    where = f"images[{k}]"
    if not isinstance(img, dict):
        rep.add(where, "-", "expected an object")
        return None
    iid = img.get("id")
    if not is_id(iid):
        rep.add(where, "id", f"expected an integer id, got {iid!r}")
        return None
    where = f"image id={iid}"
    if iid in seen:
        rep.add(where, "id", "duplicate image id")
        return None
    for key in ("width", "height"):
        if _side(img.get(key)) is None:
            rep.add(where, key, f"expected a positive integer ≤ {MAX_IMAGE_SIDE}, got {img.get(key)!r}")
    why = _check_path(image_relpath(img)) if purpose == "train" else None  # the evaluator reads no image
    if why:
        rep.add(where, "file_name", why)
    return iid


def _check_images(rep: Report, images: object, purpose: Purpose) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    if not isinstance(images, list):
        rep.add("images", "images", "expected a list of image records")
        return out
    for k, img in enumerate(images):
        iid = check_image_record(rep, k, img, out, purpose)
        if iid is not None:
            assert isinstance(img, dict)  # a kept record is an object
            out[iid] = img
    return out


def check_categories(rep: Report, categories: object, purpose: Purpose) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    if not isinstance(categories, list) or not categories:
        rep.add("categories", "categories", "expected a non-empty list of category records")
        return out
    for k, cat in enumerate(categories):
        where = f"categories[{k}]"
        if not isinstance(cat, dict):
            rep.add(where, "-", "expected an object")
            continue
        cid = cat.get("id")
        if not is_id(cid):
            rep.add(where, "id", f"expected an integer id, got {cid!r}")
            continue
        if cid in seen:
            rep.add(f"category id={cid}", "id", "duplicate category id")
            continue
        freq = cat.get("frequency")
        if (freq is not None or purpose == "evaluate") and freq not in FREQUENCY_GROUPS:
            rep.add(f"category id={cid}", "frequency", f"expected 'r', 'c' or 'f', got {freq!r}")
        for key in ("image_count", "instance_count"):
            count = cat.get(key)
            if count is not None and not (is_id(count) and count >= 0):
                rep.add(f"category id={cid}", key, f"expected a non-negative integer, got {count!r}")
        seen.add(cid)
        out.append(cat)
    return out


def check_annotations(
    rep: Report,
    annotations: object,
    images: Mapping[int, Mapping[str, Any]],
    category_ids: set[int],
    purpose: Purpose,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not isinstance(annotations, list):
        rep.add("annotations", "annotations", "expected a list of annotation records")
        return out
    seen: set[int] = set()
    for k, ann in enumerate(annotations):
        where = f"annotations[{k}]"
        if not isinstance(ann, dict):
            rep.add(where, "-", "expected an object")
            continue
        aid = ann.get("id")
        if not is_id(aid):
            rep.add(where, "id", f"expected an integer id, got {aid!r}")
            continue
        where = f"annotation id={aid}"
        if aid in seen:
            rep.add(where, "id", "duplicate annotation id")
            continue
        seen.add(aid)
        ok = True
        image_id = ann.get("image_id")
        img = images.get(image_id) if is_id(image_id) else None
        size = _size(img) if img is not None else None
        if img is None:
            rep.add(where, "image_id", f"refers to unknown image {image_id!r}")
            ok = False
        category_id = ann.get("category_id")
        if not is_id(category_id):
            got = f"{type(category_id).__name__} {category_id!r}"
            rep.add(where, "category_id", f"expected an integer category id, got {got}")
            ok = False
        elif category_id not in category_ids:
            rep.add(where, "category_id", f"refers to unknown category {category_id!r}")
            ok = False
        bbox = ann.get("bbox")
        if bbox is None and purpose == "evaluate":
            pass  # segm evaluation needs none; bbox evaluation says so (GroundTruth.require)
        elif not (isinstance(bbox, list) and len(bbox) == 4 and all(is_finite_number(v) for v in bbox)):
            rep.add(where, "bbox", f"expected [x, y, width, height] of finite numbers, got {bbox!r}")
            ok = False
        elif bbox[2] < 0 or bbox[3] < 0:  # 0 is LVISEval's degenerate box; training drops it
            rep.add(where, "bbox", f"expected a width and height ≥ 0, got {bbox!r}")
            ok = False
        elif size is not None:
            x, y, w, h = bbox
            if (
                x < -BOX_TOLERANCE
                or y < -BOX_TOLERANCE
                or x + w > size[1] + BOX_TOLERANCE
                or (y + h > size[0] + BOX_TOLERANCE)
            ):
                rep.add(where, "bbox", f"{bbox} lies outside the {size[1]:g}x{size[0]:g} image")
                ok = False
        area = ann.get("area", None if purpose == "evaluate" else 0)  # LVISEval filters on it
        if not (is_finite_number(area) and area >= 0):
            rep.add(where, "area", f"expected a finite number ≥ 0, got {area!r}")
            ok = False
        if ann.get("ignore", 0) not in (0, 1):  # also True/False
            rep.add(where, "ignore", f"expected 0 or 1, got {ann.get('ignore')!r}")
            ok = False
        if "segmentation" in ann and size is not None:  # a bad size is its image's problem
            why = segmentation_problem(ann["segmentation"], *size)
            if why:
                rep.add(where, *why)
                ok = False
        if ok:
            out.append(ann)
    return out


def check_federated_lists(
    rep: Report, images: Mapping[int, Mapping[str, Any]], category_ids: set[int], purpose: Purpose
) -> None:
    for iid, img in images.items():
        for key in ("neg_category_ids", "not_exhaustive_category_ids"):
            ids = img.get(key, None if purpose == "evaluate" else [])
            if not isinstance(ids, list) or not all(is_id(v) for v in ids):
                message = "expected a list of category ids (LVIS federated annotation; [] if none)"
                rep.add(f"image id={iid}", key, message)
                continue
            unknown = sorted(set(ids) - category_ids)
            if unknown:
                rep.add(f"image id={iid}", key, f"refers to unknown categories {unknown[:5]}")


def _non_finite(raw: dict[str, Any]) -> Iterable[tuple[str, str]]:
    """(record, field) of every NaN or ±Infinity in the file, records named as elsewhere."""
    singular = {"images": "image", "annotations": "annotation", "categories": "category"}

    def walk(value: Any, path: str) -> Iterable[str]:
        if isinstance(value, float) and not math.isfinite(value):
            yield path
        elif isinstance(value, dict):
            for key, v in value.items():
                yield from walk(v, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            for k, v in enumerate(value):
                yield from walk(v, f"{path}[{k}]")

    for key, value in raw.items():
        if key in singular and isinstance(value, list):
            for k, record in enumerate(value):
                rid = record.get("id") if isinstance(record, dict) else None
                where = f"{singular[key]} id={rid}" if is_id(rid) else f"{key}[{k}]"
                for field_ in walk(record, ""):
                    yield where, field_ or "-"
        else:
            for field_ in walk(value, str(key)):
                yield "top level", field_


def _read(p: Path, constants: list[str]) -> Any:
    """The parsed json of ``p``; NaN/Infinity literals are recorded in ``constants``."""

    def constant(name: str) -> float:
        constants.append(name)
        return float(name)

    return read_json(p, parse_constant=constant)


def check_image_files(data: LvisData, image_ids: Iterable[int] | None = None) -> list[Problem]:
    """Problems with image files: missing, unreadable, or of another size than the record says."""
    from PIL import Image

    from .images import upright_size

    problems: list[Problem] = []
    for iid in image_ids if image_ids is not None else data.images:
        img = data.images[iid]
        try:
            path = data.image_path(img)
        except InputError as err:
            problems.extend(err.problems)
            continue
        try:
            with Image.open(path) as im:
                im.verify()  # must come first: nothing else may read the file before it
            with Image.open(path) as im:
                size = upright_size(im)  # records hold the size as shown, EXIF orientation applied
        except FileNotFoundError:
            problems.append(
                Problem(str(data.path), f"image id={iid}", "file_name", f"file not found: {path}")
            )
            continue
        except Exception as err:  # PIL raises many types for corrupt files
            problems.append(
                Problem(str(data.path), f"image id={iid}", "file_name", f"unreadable image {path}: {err}")
            )
            continue
        if size != (int(img["width"]), int(img["height"])):
            problems.append(
                Problem(
                    str(data.path),
                    f"image id={iid}",
                    "width/height",
                    f"record says {img['width']}x{img['height']}, file {path} is {size[0]}x{size[1]}",
                )
            )
    return problems


def load_lvis(
    path: str | os.PathLike[str] | dict[str, Any],
    image_root: str | os.PathLike[str] | None = None,
    *,
    check_images: bool = False,
    require_annotations: bool = True,
    purpose: Purpose = "train",
) -> LvisData:
    """Read and validate an LVIS v1 or COCO instance json.

    Args:
        path: the json file, or its parsed content (named ``<ground truth>`` in messages).
        image_root: the folder that ``file_name`` (or ``coco_url``'s folder/name) is relative to.
        check_images: also open every image file (slow on large sets; off by default).
        require_annotations: False for an unlabeled pool (images only).
        purpose: ``train`` (images are read: ``file_name``, ``bbox`` required) or ``evaluate``
            (``frequency``, the federated lists and ``area`` required), module doc.

    Raises:
        InputError: listing every problem found, each with file, record and field.
    """
    constants: list[str] = []  # NaN, Infinity, -Infinity: Python's json reads them, the standard has none
    if isinstance(path, dict):  # parsed already: NaN in a field nobody reads is not written back
        p, raw = Path("<ground truth>"), path
    else:
        p = Path(path)
        raw = _read(p, constants)
    rep = Report(str(p))
    if not isinstance(raw, dict):
        raise InputError(
            [Problem(str(p), "-", "-", "expected a json object with images, annotations, categories")]
        )
    for key in ("images", "categories") + (("annotations",) if require_annotations else ()):
        if key not in raw:
            rep.add("-", key, "missing key")
    images = _check_images(rep, raw.get("images", []), purpose)
    categories = check_categories(rep, raw.get("categories", []), purpose)
    category_ids = {int(c["id"]) for c in categories}
    annotations = check_annotations(rep, raw.get("annotations", []), images, category_ids, purpose)
    check_federated_lists(rep, images, category_ids, purpose)
    if constants and not rep.problems:  # in a field nobody reads: it would break the json we write
        for record, field_ in _non_finite(raw):
            rep.add(record, field_, "expected a finite number (NaN and Infinity are not json)")
    if rep.problems:
        raise InputError(rep.problems)
    categories = sorted(categories, key=lambda c: int(c["id"]))
    root = Path(image_root) if image_root is not None else None
    data = LvisData(p, root, images, annotations, categories, raw)
    if check_images:
        problems = check_image_files(data)
        if problems:
            raise InputError(problems)
    return data
