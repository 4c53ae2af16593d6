"""Duplicates among the images mining found (the paper's §4.1 "removes duplicates"), three kinds:

    labeled         the file, or a file with the same bytes, is in the train / held-out / val json;
    identical       the same bytes as a better-ranked found image (SHA-256 of the file);
    near_duplicate  embedding cosine above ``mining.near_duplicate_cosine`` with a better-ranked
                    kept image (a re-encoded or resized copy; our threshold, D82).

Candidates come in rank order (best similarity first); the first of each group is kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..data.lvis_json import LvisData, image_relpath


def file_sha256(path: Path) -> str | None:
    """SHA-256 of a file's bytes; None when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def labeled_files(sets: Iterable[LvisData]) -> tuple[set[str], set[str]]:
    """(paths relative to the image root, SHA-256 of their bytes) of every image of ``sets``
    (files that cannot be read give their path only)."""
    names, hashes = set(), set()
    for data in sets:
        assert data.image_root is not None
        for image in data.images.values():
            name = image_relpath(image)
            names.add(Path(name).as_posix())
            digest = file_sha256(data.image_root / name)
            if digest is not None:
                hashes.add(digest)
    return names, hashes


def near_duplicate_of(vectors: np.ndarray, threshold: float) -> list[int | None]:
    """For each row in rank order: the better-ranked *kept* row it is a near-duplicate of
    (cosine > ``threshold``), or None when it is kept.

    Args:
        vectors: [n, D] float32 unit rows, best-ranked first.

    Greedy, as a reader would do it by hand: a row dropped as a copy of row 0 does not drop row 2
    in its turn. Faiss ``range_search`` finds each row's neighbours above the threshold.
    """
    import faiss

    n = vectors.shape[0]
    if n == 0:
        return []
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    # range_search keeps similarities strictly above the radius for inner-product indexes
    lims, _, ids = index.range_search(x, float(threshold))
    kept = np.zeros(n, dtype=bool)
    out: list[int | None] = []
    for i in range(n):
        nbrs = ids[lims[i] : lims[i + 1]]
        earlier = np.sort(nbrs[(nbrs < i) & kept[np.clip(nbrs, 0, n - 1)]])
        if earlier.size:
            out.append(int(earlier[0]))
        else:
            kept[i] = True
            out.append(None)
    return out


def first_of_identical(hashes: Sequence[str]) -> list[int | None]:
    """For each item in rank order: the index of the first earlier item with the same hash, or None."""
    first: dict[str, int] = {}
    out: list[int | None] = []
    for i, h in enumerate(hashes):
        out.append(first.get(h))
        first.setdefault(h, i)
    return out
