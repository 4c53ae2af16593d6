"""The images to mine from: a folder, a list file, or an LVIS/COCO json (``mining.pool``).

Every pool file must lie under ``data.image_root``: the mined json names it relative to that root,
the only one the student reads images from (docs/decisions.md D79).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..data.lvis_json import image_relpath, load_lvis
from ..errors import InputError, Problem

#: File endings a folder pool takes as images (case-insensitive); other files are not listed.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


@dataclass(frozen=True)
class PoolImage:
    """One pool image: its id in the mined json and its path relative to the image root (POSIX)."""

    id: int
    file_name: str


def _relative(path: Path, root: Path, source: str, record: str) -> str:
    real, real_root = path.resolve(), root.resolve()
    if not real.is_relative_to(real_root):
        message = f"{path} lies outside data.image_root {root}; the student reads images from there only"
        raise InputError([Problem(source, record, "file_name", message)])
    return real.relative_to(real_root).as_posix()


def list_pool(source: str | os.PathLike[str], image_root: str | os.PathLike[str]) -> list[PoolImage]:
    """The pool's images in a fixed order (a folder's sorted by path, a list's and a json's as given).

    Args:
        source: a folder, a ``.txt`` list (blank lines and ``#`` comments ignored; relative paths are
            relative to the list's folder), or a ``.json`` of images (annotations optional).
        image_root: the folder the mined json's ``file_name`` are relative to (``data.image_root``).

    Returns:
        Folder and list: ids 1..N in order; json: the file's image ids.

    Raises:
        InputError: a missing source, an unknown kind of file, a file outside ``image_root``, a
            repeated file, or a bad json record (named by ``load_lvis``).
    """
    src, root = Path(source), Path(image_root)
    name = str(src)
    if not src.exists():
        raise InputError([Problem(name, "-", "mining.pool", "not found (a folder, a .txt list or a .json)")])
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        images = [PoolImage(k + 1, _relative(p, root, name, str(p))) for k, p in enumerate(files)]
    elif src.suffix.lower() == ".txt":
        images = []
        lines = src.read_text(encoding="utf-8-sig").splitlines()
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            path = Path(text) if Path(text).is_absolute() else src.parent / text
            images.append(PoolImage(len(images) + 1, _relative(path, root, name, f"line {number}")))
    elif src.suffix.lower() == ".json":
        data = load_lvis(src, root, require_annotations=False)
        images = [
            PoolImage(iid, _relative(root / image_relpath(data.images[iid]), root, name, f"image id={iid}"))
            for iid in data.images
        ]
    else:
        message = "expected a folder, a .txt list of image files or a .json of images"
        raise InputError([Problem(name, "-", "mining.pool", message)])
    seen: dict[str, int] = {}
    problems = []
    for image in images:
        if image.file_name in seen:
            message = f"{image.file_name} listed twice (also id={seen[image.file_name]})"
            problems.append(Problem(name, f"id={image.id}", "file_name", message))
        seen.setdefault(image.file_name, image.id)
    if problems:
        raise InputError(problems)
    if not images:
        raise InputError([Problem(name, "-", "mining.pool", "holds no images")])
    return images
