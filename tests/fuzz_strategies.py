"""Hypothesis strategies for the input fuzzer (tests/test_fuzz_inputs.py): one mutation of a valid
LVIS/COCO ground truth, COCO results list or config, or a broken file in place of any of them.

A mutation is data, not a function, so that hypothesis can print and shrink it:
``Mutation(path, action, value)`` where ``path`` walks the parsed file (``("annotations", 2,
"bbox")``) and ``action`` is ``delete`` (the key or list item), ``set`` (to ``value``) or ``extra``
(an unknown key ``value`` added to the mapping at ``path``).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from typing import Any

import pycocotools.mask as mask_utils
from hypothesis import strategies as st

from lvis_factory import tiny_lvis

# -- the valid starting points ------------------------------------------------------------------


def valid_ground_truth() -> dict[str, Any]:
    """3 images 40×32, 5 annotations with polygons, 3 categories (r, c, f), federated lists."""
    return tiny_lvis(num_images=3)


def valid_results(gt: dict[str, Any]) -> list[dict[str, Any]]:
    """One detection per annotation (its box, its mask as compressed RLE) and one false positive."""
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    out = []
    for a in gt["annotations"]:
        h, w = sizes[a["image_id"]]
        rle = mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], h, w))
        seg = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
        out.append(
            {
                "image_id": a["image_id"],
                "category_id": a["category_id"],
                "score": 0.9,
                "bbox": a["bbox"],
                "segmentation": seg,
            }
        )
    fp = copy.deepcopy(out[0])
    fp.update(category_id=30, score=0.3)
    return [*out, fp]


# -- values ------------------------------------------------------------------------------------

#: Values a careless tool writes: wrong types, non-finite, negative, beyond float and int64.
SPECIAL: list[Any] = [
    None,
    "",
    "x",
    "1",
    "NaN",
    True,
    False,
    0,
    -1,
    1.5,
    -1e300,
    1e308,
    2**63,
    -(2**63) - 1,
    10**400,
    math.nan,
    math.inf,
    -math.inf,
    [],
    {},
    [[]],
    [None],
    ["a", 1],
    {"a": [1, {"b": None}]},
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
junk = st.one_of(st.sampled_from(SPECIAL), json_values)

# A coordinate that breaks a polygon or a box: non-finite, far away, of the wrong type.
bad_number = st.sampled_from(
    [math.nan, math.inf, -math.inf, 1e300, -1e300, 2.085e8, 10**400, "1", None, True]
)
coordinate = st.floats(min_value=-100, max_value=100, allow_nan=False)

polygons = st.one_of(
    st.just([]),
    st.just([[]]),
    st.lists(coordinate, max_size=5).map(lambda p: [p]),  # fewer than 3 points
    st.lists(coordinate, min_size=7, max_size=13).filter(lambda p: len(p) % 2 == 1).map(lambda p: [p]),
    st.tuples(st.lists(coordinate, min_size=6, max_size=10), st.integers(0, 9), bad_number).map(
        lambda t: [[*t[0][: t[1]], t[2], *t[0][t[1] :]][: len(t[0]) // 2 * 2 or 6]]
    ),
    st.lists(st.sampled_from([-5000.0, 5000.0, 1e9, -1e9]), min_size=6, max_size=8).map(
        lambda p: [p[: len(p) // 2 * 2]]
    ),
    st.just([[0, 0, 10, 0, 10, 10], "not a polygon"]),
    st.just([[[0, 0], [10, 0], [10, 10]]]),  # points as pairs
    st.just([0, 0, 10, 0, 10, 10]),  # not nested
)

rle_counts = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=st.characters(min_codepoint=48, max_codepoint=111), max_size=12),  # RLE alphabet
    st.just("S28h00000000000000mm0"[:-3]),  # truncated
    st.just("b'S28h00000000000000mm0'"),
    st.lists(st.integers(-3, 2000), max_size=6),  # runs not adding up, negative
    st.lists(st.sampled_from([1.5, None, "3", math.nan]), min_size=1, max_size=3),
    st.sampled_from([None, 5, "", [], {}]),
)
rle_sizes = st.one_of(
    st.just([32, 40]),
    st.just([40, 32]),
    st.just([0, 0]),
    st.just([-32, -40]),
    st.just([32.0, 40.0]),
    st.just([32]),
    st.just(["32", "40"]),
    st.just(None),
    st.just([10**400, 40]),
)
rles = st.builds(lambda s, c: {"size": s, "counts": c}, rle_sizes, rle_counts) | st.just(
    {"counts": "S28h0mm0"}
)
segmentations = st.one_of(polygons, rles, junk)


# -- mutations -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutation:
    path: tuple[str | int, ...]
    action: str  # "delete", "set", "extra"
    value: Any = None

    def apply(self, data: Any) -> Any:
        data = copy.deepcopy(data)
        if self.action == "extra":
            _at(data, self.path)[self.value] = "extra value"
            return data
        parent, key = _at(data, self.path[:-1]), self.path[-1]
        if self.action == "delete":
            del parent[key]
        else:
            parent[key] = self.value
        return data

    @property
    def record(self) -> tuple[str | int, ...]:
        """The path of the record (``("annotations", 2)``) whose field is mutated."""
        return self.path if self.action == "extra" else self.path[:-1]

    @property
    def field(self) -> str | int:
        return self.value if self.action == "extra" else self.path[-1]


def _at(data: Any, path: tuple[str | int, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


#: Keys a record of each kind may carry (the tiny files' and the optional ones readers read).
GT_KEYS = {
    "images": [
        "id",
        "width",
        "height",
        "file_name",
        "coco_url",
        "neg_category_ids",
        "not_exhaustive_category_ids",
    ],
    "annotations": ["id", "image_id", "category_id", "bbox", "area", "segmentation", "iscrowd", "ignore"],
    "categories": ["id", "name", "synset", "frequency", "image_count", "instance_count"],
}
RESULT_KEYS = ["image_id", "category_id", "score", "bbox", "segmentation"]
#: Keys no reader knows: added to a record, they must be accepted. (A known optional key added
#: with a junk value, e.g. an annotation's `ignore`, may be refused naming it.)
UNKNOWN_KEYS = ("license", "flickr_url", "unknown", "__proto__", "")
extra_keys = st.sampled_from(UNKNOWN_KEYS)


def _value_for(key: str | int) -> st.SearchStrategy[Any]:
    """Junk for any key, plus values aimed at what that key holds."""
    if key == "segmentation":
        return segmentations
    if key == "bbox":
        return st.one_of(junk, st.lists(st.one_of(coordinate, bad_number), max_size=5))
    if key in ("id", "image_id", "category_id"):
        return st.one_of(junk, st.sampled_from([1, 2, 3, 10, 20, 30, 999, "1", 1.0, -1, 2**64]))
    if key in ("neg_category_ids", "not_exhaustive_category_ids"):
        return st.one_of(junk, st.lists(st.sampled_from([10, 20, 999, "10", None, 1.5]), max_size=3))
    if key == "frequency":
        return st.one_of(junk, st.sampled_from(["r", "c", "f", "R", "rare", ""]))
    return junk


@st.composite
def record_mutation(
    draw: st.DrawFn, data: dict[str, Any] | list[Any], keys: dict[str, list[str]]
) -> Mutation:
    """One change to one record of ``data``: a key deleted, set to ``_value_for`` it, or an
    unknown key added."""
    if isinstance(data, list):  # results: the list is the only collection
        collection: tuple[str | int, ...] = ()
        records, names = data, keys[""]
    else:
        name = draw(st.sampled_from(sorted(keys)))
        collection, records, names = (name,), data[name], keys[name]
    n = draw(st.integers(0, len(records) - 1))
    record = (*collection, n)
    action = draw(st.sampled_from(["delete", "set", "set", "set", "extra"]))
    if action == "extra":
        return Mutation(record, "extra", draw(extra_keys))
    key = draw(st.sampled_from(names))
    if action == "delete":
        if key not in records[n]:
            return Mutation(record, "extra", key)  # a known optional key added back with junk
        return Mutation((*record, key), "delete")
    return Mutation((*record, key), "set", draw(_value_for(key)))


def ground_truth_mutations(gt: dict[str, Any]) -> st.SearchStrategy[Mutation]:
    top = st.one_of(
        st.builds(
            lambda k: Mutation((k,), "delete"), st.sampled_from(["images", "annotations", "categories"])
        ),
        st.builds(
            lambda k, v: Mutation((k,), "set", v),
            st.sampled_from(["images", "annotations", "categories"]),
            junk,
        ),
        st.builds(
            lambda k, v: Mutation((k, 0), "set", v),
            st.sampled_from(["images", "annotations", "categories"]),
            junk,
        ),
        st.builds(lambda k: Mutation((), "extra", k), extra_keys),
    )
    return st.one_of(
        top, record_mutation(gt, GT_KEYS), record_mutation(gt, GT_KEYS), record_mutation(gt, GT_KEYS)
    )


def results_mutations(results: list[Any]) -> st.SearchStrategy[Mutation]:
    whole = st.builds(lambda n, v: Mutation((n,), "set", v), st.integers(0, len(results) - 1), junk)
    return st.one_of(
        whole, record_mutation(results, {"": RESULT_KEYS}), record_mutation(results, {"": RESULT_KEYS})
    )


# -- configs ---------------------------------------------------------------------------------------


def config_leaves(config: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of a parsed config, sections and values."""
    out = []
    for key, value in config.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out += config_leaves(value, (*prefix, key))
    return out


def config_mutations(config: dict[str, Any]) -> st.SearchStrategy[Mutation]:
    paths = st.sampled_from(config_leaves(config))
    sections = st.sampled_from([()] + [p for p in config_leaves(config) if isinstance(_at(config, p), dict)])
    return st.one_of(
        st.builds(lambda p: Mutation(p, "delete"), paths),
        st.builds(lambda p, v: Mutation(p, "set", v), paths, junk),
        st.builds(lambda p, v: Mutation(p, "set", v), paths, junk),
        st.builds(lambda p, k: Mutation(p, "extra", k), sections, extra_keys),
    )


# -- whole files -----------------------------------------------------------------------------------


def broken_files(valid: bytes) -> st.SearchStrategy[bytes]:
    """Empty, binary, not UTF-8, truncated, or valid json of the wrong shape."""
    return st.one_of(
        st.sampled_from(
            [
                b"",
                b" ",
                b"\n",
                b"\x00",
                b"\xff\xfe{}",
                b"\xef\xbb\xbf" + valid,
                b"{",
                b"[",
                b"null",
                b"0",
                b'"text"',
                b"{}",
                b"[]",
                b"[[]]",
                b"[{}]",
                b"NaN",
                b"{'a': 1}",
                b"key: value\n",
                b"- 1\n- 2\n",
            ]
        ),
        st.binary(max_size=40),
        st.integers(1, max(1, len(valid) - 1)).map(lambda n: valid[:n]),
        st.text(max_size=20).map(lambda t: t.encode("utf-8")),
    )


def as_json(obj: Any) -> bytes:
    """json as Python writes it (NaN and Infinity included, as peers' files have them)."""
    return json.dumps(obj).encode("utf-8")
