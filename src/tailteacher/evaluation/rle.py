"""Checks of COCO compressed RLE strings, vectorised over many masks.

pycocotools trusts its input: a ``counts`` string whose runs do not add up to height × width
makes ``mask.iou`` loop forever (the run walk never ends when one mask is shorter than the
other), and characters outside the alphabet decode to garbage. So every RLE that reaches
pycocotools is checked here first, in numpy, without decoding a single pixel.

The format (pycocotools ``rleToString``): counts are run lengths, background first, each
written as a little-endian base-32 varint of characters ``chr(48 + v)``, v in [0, 64): 5 value
bits, 0x20 = more characters follow, 0x10 in the last character = negative. From the fourth
run on, a run is stored as the difference to the run two before it.

Shapes: N strings, L characters in all, V varints (runs) in all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A count is below h·w < 2**31, 31 bits: at most 7 characters of 5 bits.
_MAX_CHARS_PER_RUN = 7
_CHUNK_CHARS = 1 << 20  # strings are decoded in batches of about this many characters
_LAST_CHAR_VALUE = np.array([(v & 0x1F) - ((v & 0x10) << 1) for v in range(256)], np.int64)


@dataclass(frozen=True)
class RleCheck:
    """Per string: ``problem`` ('' when valid) and ``area`` (foreground pixels, 0 when invalid)."""

    problem: list[str]
    area: np.ndarray  # [N] int64


def _problem_of(counts: str, pixels: int) -> str:
    """The exact problem of one string (slow path, only for strings the fast path rejected)."""
    if not counts:
        return "empty RLE counts"
    if not counts.isascii() or any(not 48 <= ord(ch) < 112 for ch in counts):
        bad = next(ch for ch in counts if not 48 <= ord(ch) < 112)
        return f"RLE counts contain {bad!r}, outside the compressed-RLE alphabet '0'..'o'"
    runs: list[int] = []
    value, shift = 0, 0
    for ch in counts:
        v = ord(ch) - 48
        value |= (v & 0x1F) << shift
        shift += 5
        if v & 0x20:
            if shift >= 5 * _MAX_CHARS_PER_RUN:
                return "RLE counts contain a run length too large for any image"
            continue
        if v & 0x10:
            value -= 1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
        value, shift = 0, 0
    if shift:
        return "RLE counts end in the middle of a run length (truncated string?)"
    if min(runs) < 0:
        return "RLE counts decode to a negative run length"
    total = sum(runs)
    if total != pixels:
        return f"RLE runs cover {total} pixels, expected height × width = {pixels}"
    return ""


def _check_chunk(counts: list[str], pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fast path over a batch: (ok [n] bool, area [n] int64); all False if any string is bad."""
    n = len(counts)
    rejected = np.zeros(n, bool), np.zeros(n, np.int64)
    lengths = np.fromiter(map(len, counts), np.int64, n)
    if n == 0 or not (lengths > 0).all():
        return rejected
    try:
        raw = "".join(counts).encode("ascii")
    except UnicodeEncodeError:
        return rejected
    x = np.frombuffer(raw, np.uint8) - np.uint8(48)  # wraps below '0', so one bound checks both
    if int(x.max()) >= 64:
        return rejected
    last = np.cumsum(lengths) - 1  # [n] each string's last character
    more = (x & 0x20).astype(bool)
    if more[last].any():  # a string ends inside a run length
        return rejected
    ends = np.flatnonzero(~more)  # [V] last character of each run length
    # The last character, sign-extended: v & 0x1F, minus 32 when the sign bit 0x10 is set.
    val = _LAST_CHAR_VALUE.take(x.take(ends))
    # Runs of several characters (a minority): shift the last one up, add the lower ones.
    # (ends[0] − 1 may be −1: the last character of all, whose "more" bit is 0, checked above.)
    multi = np.flatnonzero(more.take(ends - 1))
    if multi.size:
        end = ends[multi]
        start = np.where(multi > 0, ends.take(multi - 1), -1) + 1  # first character of the run
        extra = end - start  # characters before the last one
        if int(extra.max()) >= _MAX_CHARS_PER_RUN:
            return rejected
        value = val[multi] << (5 * extra)
        for k in range(int(extra.max())):
            has = np.flatnonzero(extra > k)
            value[has] += (x.take(start[has] + k) & 0x1F).astype(np.int64) << (5 * k)
        val[multi] = value

    # Pair the runs (background, foreground) per string, padding an odd count with a zero
    # run: then a cumulative sum along each row undoes the "two runs before" deltas, and
    # run p of a string is cum[:, p] − cum[:, string's first pair − 1].
    runs_upto = np.searchsorted(ends, last, side="right")  # [n] runs in strings 0..s
    num_runs = np.diff(runs_upto, prepend=0)
    odd_count = np.flatnonzero(num_runs & 1)
    pairs = np.insert(val, runs_upto[odd_count], 0).reshape(-1, 2).T.copy()  # [2, P]
    num_pairs = (num_runs + 1) >> 1
    pair_end = np.cumsum(num_pairs)  # [n] one past each string's last pair
    pair_first = pair_end - num_pairs
    run0 = pairs[0, pair_first]  # the first run is absolute, not a delta
    pairs[0, pair_first] = 0
    cum = np.cumsum(pairs, axis=1)
    before = np.zeros((2, n), np.int64)
    before[:, 1:] = cum[:, pair_end[:-1] - 1]
    if (run0 < 0).any() or (np.minimum.reduceat(cum, pair_first, axis=1) < before).any():
        return rejected  # a negative run
    sums = np.add.reduceat(cum, pair_first, axis=1) - num_pairs * before  # [2, n] per string
    sums[0] += run0
    # The padding repeats the string's last foreground run in `cum`: take it out again.
    sums[1, odd_count] -= cum[1, pair_end[odd_count] - 1] - before[1, odd_count]
    ok = sums.sum(axis=0) == pixels
    return ok, np.where(ok, sums[1], 0)


def check_rle_counts(counts: list[str], heights: np.ndarray, widths: np.ndarray) -> RleCheck:
    """Check compressed RLE ``counts`` strings against their masks' sizes.

    Args:
        counts: N strings.
        heights, widths: [N] the size each mask must have.

    Returns:
        Per string the problem ('' if none) and the foreground area, equal to
        ``pycocotools.mask.area`` for the valid ones.
    """
    n = len(counts)
    pixels = heights.astype(np.int64) * widths.astype(np.int64)
    ok = np.zeros(n, bool)
    area = np.zeros(n, np.int64)
    start = 0
    while start < n:
        stop, size = start, 0
        while stop < n and (size < _CHUNK_CHARS or stop == start):
            size += len(counts[stop])
            stop += 1
        ok[start:stop], area[start:stop] = _check_chunk(counts[start:stop], pixels[start:stop])
        start = stop
    problem = [""] * n
    # A batch is rejected whole when one string in it is bad: find which, then redo the others.
    redo = []
    for i in np.flatnonzero(~ok).tolist():
        problem[i] = _problem_of(counts[i], int(pixels[i]))
        if not problem[i]:
            redo.append(i)
    if redo:
        ok_redo, area_redo = _check_chunk([counts[i] for i in redo], pixels[redo])
        area[redo] = area_redo
        for i, good in zip(redo, ok_redo.tolist(), strict=True):
            if not good:  # the two decoders disagree: refuse rather than guess
                problem[i] = "RLE counts could not be decoded"
    return RleCheck(problem=problem, area=area)
