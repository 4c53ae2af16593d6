"""The embedded benchmark: a generated, deterministic, long-tailed instance-segmentation set in
LVIS format (``tailteacher synth``).

Classes are a shape family × an appearance variant (colour, texture), so classes of one family,
or of one colour, look alike. Each class's number of training images is fixed by the preset: the
quantiles of a truncated power law p(n) ∝ n^-β over [tail, head], so the LVIS groups (rare ≤ 10
training images, common 11-100, frequent > 100) are the same for every seed. Frequency ranks go
round the families, so every family has frequent and rare members: a rare class has frequent
look-alikes. Validation holds every class at least ``val_min_images`` times; the unlabeled pool
follows a flattened law (n^τ), so rare classes are more frequent there than in the labeled set.

On request (``pool_images``) a larger *mining pool* is written beside them: drawn like the world
(class image counts ∝ the training counts, no tempering) plus distractor images with no object of
any class (empty backgrounds, or shapes in colours no class has), for ``tailteacher mine`` to pick
a student's unlabeled set from (docs/decisions.md D80). The other files do not change with it.

It is a test bed for the method, not a claim about LVIS. Pixels are drawn by ``synth_draw``;
this module plans the data set and writes the files (docs/benchmark.md).
"""

from __future__ import annotations

import functools
import io
import json
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import InputError
from ..io import atomic_write_bytes
from . import synth_draw as draw
from .frequency import group_of
from .label_fraction import check_fraction, split_labeled

SPLITS = ("train", "val", "unlabeled")
JSON_FILES = ("train.json", "val.json", "unlabeled.json", "unlabeled_truth.json")
#: The optional mining pool: its split name (images/pool/) and files (D80).
POOL = "pool"
POOL_FILES = ("pool.json", "pool_truth.json")
# The random streams of each split; the pool's key comes after the three fixed splits.
_SPLIT_KEYS = {"train": 0, "val": 1, "unlabeled": 2, POOL: 3}
DESCRIPTION = "tailteacher synthetic long-tailed benchmark (a test bed, not LVIS)"
# Instances of a class in an image where it appears: 1, 2 or 3.
_EXTRA_INSTANCE_P = (0.7, 0.2, 0.1)


@dataclass(frozen=True)
class Preset:
    """Sizes and laws of one benchmark. Image counts are per split; ``head_images`` and
    ``tail_images`` are the training-image counts of the most and least frequent class."""

    name: str
    families: tuple[str, ...]
    variants: tuple[tuple[str, str], ...]  # (colour, texture)
    image_size: int
    train_images: int
    val_images: int
    unlabeled_images: int
    head_images: int
    tail_images: int
    power: float = 1.0  # β of p(n) ∝ n^-β; 1 = log-uniform image counts
    val_min_images: int = 10
    val_fraction: float = 0.1  # val images of a class: max(val_min_images, val_fraction · train)
    unlabeled_tempering: float = 0.5  # τ: unlabeled images of a class ∝ (train images)^τ
    max_classes_per_image: int = 6
    neg_per_image: int = 6
    not_exhaustive_fraction: float = 0.03
    object_size: tuple[float, float] = (0.16, 0.38)  # diameter / image side
    rank_step: int = 3  # variant offset between families at one frequency level
    pool_images: int = 0  # the mining pool's images (0: none written)
    pool_distractor_fraction: float = 0.25  # share of pool images with no object of any class

    def __post_init__(self) -> None:
        bad = [f for f in self.families if f not in draw.FAMILIES]
        bad += [c for c, t in self.variants if c not in draw.COLOURS]
        bad += [t for c, t in self.variants if t not in draw.TEXTURES]
        if bad or not self.families or not self.variants:
            raise ValueError(f"preset {self.name}: unknown or missing families/colours/textures {bad}")
        sizes = (self.image_size, self.train_images, self.val_images, self.unlabeled_images)
        if min(sizes) < 1 or not 1 <= self.tail_images <= self.head_images <= self.train_images:
            raise ValueError(f"preset {self.name}: need 1 ≤ tail_images ≤ head_images ≤ train_images")
        if self.pool_images < 0 or not 0 <= self.pool_distractor_fraction < 1:
            raise ValueError(f"preset {self.name}: need pool_images ≥ 0 and 0 ≤ pool_distractor_fraction < 1")

    @property
    def num_classes(self) -> int:
        return len(self.families) * len(self.variants)

    @property
    def pool_object_images(self) -> int:
        """Pool images that hold objects of the classes (the rest are distractors)."""
        return round(self.pool_images * (1.0 - self.pool_distractor_fraction))


# Near-hue twins (red/rose, blue/violet) inside the per-instance colour jitter's reach: a class and
# its twin differ in a fine detail, and the class plan makes some rare classes the twins of
# frequent ones, so with 1-10 training images they are confused with a frequent look-alike.
_TWIN_COLOURS = ("red", "rose", "blue", "violet")
_DEMO_VARIANTS = tuple((c, t) for c in _TWIN_COLOURS for t in ("solid", "striped"))
PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        families=("circle", "square", "triangle", "ring"),
        variants=(("red", "solid"), ("red", "striped"), ("blue", "dotted")),
        image_size=64,
        train_images=160,
        val_images=40,
        unlabeled_images=60,
        head_images=160,
        tail_images=2,
        val_min_images=6,
        max_classes_per_image=5,
        neg_per_image=3,
        not_exhaustive_fraction=0.05,
    ),
    "demo": Preset(
        name="demo",
        families=draw.FAMILIES,
        variants=_DEMO_VARIANTS,
        image_size=96,
        train_images=750,
        val_images=240,
        unlabeled_images=2000,
        head_images=200,
        tail_images=1,
    ),
    "bench": Preset(
        name="bench",
        families=draw.FAMILIES,
        variants=tuple((c, t) for c in (*_TWIN_COLOURS, "green") for t in ("solid", "striped")),
        image_size=96,
        train_images=1200,
        val_images=320,
        unlabeled_images=3000,
        head_images=300,
        tail_images=1,
    ),
}


@dataclass(frozen=True)
class SynthClass:
    """One category. ``*_images``: images of each split that contain it, fixed by the preset
    (train ``image_count`` equals ``train_images`` exactly; the unlabeled count is in the truth)."""

    id: int
    family: str
    colour: str
    texture: str
    rank: int  # 0 = most frequent in train
    train_images: int
    val_images: int
    unlabeled_images: int
    pool_images: int = 0  # images of the mining pool that contain it (∝ train_images)

    @property
    def name(self) -> str:
        return f"{self.colour}_{self.texture}_{self.family}"

    @property
    def frequency(self) -> str:
        return group_of(self.train_images)


def get_preset(preset: str | Preset) -> Preset:
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise InputError(f"preset: expected one of {', '.join(PRESETS)}, got {preset!r}")
    return PRESETS[preset]


def power_law_counts(n: int, head: int, tail: int, power: float) -> list[int]:
    """Quantiles of p(x) ∝ x^-power on [tail, head] at n evenly spaced levels, head first."""
    u = 1.0 - np.arange(n) / max(n - 1, 1)
    if abs(power - 1.0) < 1e-12:
        x = tail * (head / tail) ** u
    else:
        a, b = tail ** (1.0 - power), head ** (1.0 - power)
        x = (a + u * (b - a)) ** (1.0 / (1.0 - power))
    return [int(v) for v in np.rint(x)]


def class_plan(preset: str | Preset) -> tuple[SynthClass, ...]:
    """Every category, by id (family-major). Seed-independent: same list for every seed.

    Rank r (0 = most frequent) goes to family r mod F, variant (r // F + step · family) mod V:
    each family has one class at every one of the V frequency levels, and where F ≤ V and step
    is prime to V the F classes of one level all differ in variant (no colour is all-rare).
    """
    return _class_plan(get_preset(preset))


@functools.lru_cache(maxsize=8)
def _class_plan(p: Preset) -> tuple[SynthClass, ...]:
    nf, nv = len(p.families), len(p.variants)
    train = power_law_counts(p.num_classes, p.head_images, p.tail_images, p.power)
    weight = np.asarray(train, dtype=np.float64) ** p.unlabeled_tempering
    unlabeled_total = p.unlabeled_images * sum(train) / p.train_images
    pool_total = p.pool_object_images * sum(train) / p.train_images
    rank_of: dict[tuple[int, int], int] = {}
    for r in range(p.num_classes):
        f = r % nf
        rank_of[(f, (r // nf + p.rank_step * f) % nv)] = r
    classes = []
    for f, family in enumerate(p.families):
        for v, (colour, tex) in enumerate(p.variants):
            r = rank_of[(f, v)]
            classes.append(
                SynthClass(
                    id=f * nv + v + 1,
                    family=family,
                    colour=colour,
                    texture=tex,
                    rank=r,
                    train_images=train[r],
                    val_images=max(p.val_min_images, round(p.val_fraction * train[r])),
                    unlabeled_images=max(1, round(unlabeled_total * weight[r] / weight.sum())),
                    pool_images=round(pool_total * train[r] / sum(train)),
                )
            )
    return tuple(classes)


def _rng(seed: int, split: str, stream: int, index: int) -> np.random.Generator:
    # Fixed-length keys: SeedSequence pads short keys with zeros, so [s, 1] would equal [s, 1, 0].
    return np.random.default_rng([seed, _SPLIT_KEYS[split], stream, index])


def _capacities(total: int, n: int, most: int, rng: np.random.Generator) -> np.ndarray:
    caps = 1 + rng.multinomial(total - n, np.full(n, 1.0 / n))
    excess = int(np.clip(caps - most, 0, None).sum())
    caps = np.minimum(caps, most)
    while excess > 0:
        room = np.flatnonzero(caps < most)
        pick = rng.choice(room, size=min(excess, room.size), replace=False)
        caps[pick] += 1
        excess -= pick.size
    return caps


def split_layout(preset: str | Preset, split: str, seed: int) -> list[list[int]]:
    """Class indices (0-based, = id - 1) present in each image of a split, exactly as planned:
    class k is in exactly its planned number of images of the split.

    Images get a capacity (classes per image, at most ``max_classes_per_image``) summing to the
    planned total; classes, most frequent first, take images with probability ∝ spare capacity.
    """
    p = get_preset(preset)
    classes = class_plan(p)
    targets = [getattr(c, f"{split}_images") for c in classes]
    n = {
        "train": p.train_images,
        "val": p.val_images,
        "unlabeled": p.unlabeled_images,
        POOL: p.pool_object_images,
    }[split]
    total = sum(targets)
    if not n <= total <= n * p.max_classes_per_image or max(targets) > n:
        raise ValueError(
            f"preset {p.name}: {split} has {total} class-image slots for {n} images; "
            f"need between {n} and {n * p.max_classes_per_image} and no class above {n}"
        )
    rng = _rng(seed, split, 0, 0)
    spare = _capacities(total, n, p.max_classes_per_image, rng)
    members: list[list[int]] = [[] for _ in range(n)]
    for k in sorted(range(len(targets)), key=lambda k: (-targets[k], k)):
        free = np.flatnonzero(spare > 0)
        chosen = rng.choice(
            free, size=min(targets[k], free.size), replace=False, p=spare[free] / spare[free].sum()
        )
        if chosen.size < targets[k]:  # rare: spare capacity left in too few images
            rest = np.setdiff1d(np.arange(n), chosen)
            chosen = np.concatenate([chosen, rng.choice(rest, size=targets[k] - chosen.size, replace=False)])
        spare[chosen] -= 1
        for i in chosen:
            members[int(i)].append(k)
    for i in range(n):  # an image left empty by the fallback takes a class from the fullest one
        if not members[i]:
            donor = max(range(n), key=lambda j: len(members[j]))
            members[i].append(members[donor].pop())
    return members


@dataclass
class SynthImage:
    pixels: np.ndarray  # uint8 [H, W, 3]
    instances: list[draw.DrawnObject]
    neg_category_ids: list[int]
    not_exhaustive_category_ids: list[int] = field(default_factory=list)


def synth_image(
    preset: str | Preset, present: list[int], rng: np.random.Generator, *, complete: bool = False
) -> SynthImage:
    """Draw one image holding the classes ``present`` (0-based indices), 1-3 instances each.

    ``neg_category_ids``: ``neg_per_image`` categories drawn from those absent. With
    ``complete=False`` a fraction of images leave one instance of a category with several
    unannotated (``annotated=False``) and list it in ``not_exhaustive_category_ids``.
    """
    p = get_preset(preset)
    classes = class_plan(p)
    extra = rng.choice(len(_EXTRA_INSTANCE_P), size=len(present), p=_EXTRA_INSTANCE_P)
    # First instances of every class before any extra one: those must fit, extras may not.
    order = [(k, True) for k in present] + [
        (k, False) for k, e in zip(present, extra, strict=True) for _ in range(e)
    ]
    looks = [
        (classes[k].id, draw.Look(classes[k].family, classes[k].colour, classes[k].texture), req)
        for k, req in order
    ]
    pixels, instances = draw.compose(looks, p.image_size, p.object_size, rng)
    absent = sorted(set(range(len(classes))) - set(present))
    negs = rng.choice(absent, size=min(p.neg_per_image, len(absent)), replace=False) if absent else ()
    image = SynthImage(pixels, instances, sorted(int(k) + 1 for k in negs))
    if not complete and rng.random() < p.not_exhaustive_fraction:
        per_class = Counter(inst.category_id for inst in instances)
        several = sorted(cid for cid, n in per_class.items() if n > 1)
        if several:
            cid = several[int(rng.integers(len(several)))]
            [inst for inst in instances if inst.category_id == cid][-1].annotated = False
            image.not_exhaustive_category_ids = [cid]
    return image


def distractor_image(preset: str | Preset, rng: np.random.Generator) -> SynthImage:
    """A pool image with no object of any class: half of them an empty background, half 1-3 shapes
    in a colour no class of the preset has (objects a mining query should not find). Nothing in
    it is annotated; ``instances`` is empty."""
    p = get_preset(preset)
    spare = sorted(set(draw.COLOURS) - {c for c, _ in p.variants})
    looks: list[tuple[int, draw.Look, bool]] = []
    if spare and rng.random() < 0.5:
        for k in range(1 + int(rng.integers(3))):
            look = draw.Look(
                p.families[int(rng.integers(len(p.families)))],
                spare[int(rng.integers(len(spare)))],
                draw.TEXTURES[int(rng.integers(len(draw.TEXTURES)))],
            )
            looks.append((0, look, k == 0))
    pixels, _ = draw.compose(looks, p.image_size, p.object_size, rng)
    return SynthImage(pixels, [], [])


def pool_plan(preset: str | Preset, seed: int) -> list[list[int] | None]:
    """The mining pool's images in order: the classes (0-based) of each, None for a distractor.
    Class k is in exactly ``pool_images`` of its images; distractors are spread at random."""
    p = get_preset(preset)
    objects: list[list[int] | None] = list(split_layout(p, POOL, seed)) if p.pool_object_images else []
    plan = objects + [None] * (p.pool_images - len(objects))
    order = _rng(seed, POOL, 2, 0).permutation(len(plan))
    return [plan[int(i)] for i in order]


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator that draws image ``index`` (0-based) of ``split``."""
    return _rng(seed, split, 1, index)


@dataclass(frozen=True)
class SynthSummary:
    """What ``generate`` wrote. ``instances[split]``: annotations written (for the unlabeled
    pool, those of the truth file); ``group_instances[split][g]``: of which in group g."""

    preset: str
    seed: int
    out: Path
    groups: dict[str, int]  # classes per LVIS group (r, c, f)
    images: dict[str, int]
    instances: dict[str, int]
    group_instances: dict[str, dict[str, int]]
    seconds: float


def _image_record(
    image_id: int, file_name: str, size: int, neg: list[int], not_exhaustive: list[int]
) -> dict[str, Any]:
    """An LVIS image record of a square ``size`` px image (key order as written since D60)."""
    return {
        "id": image_id,
        "file_name": file_name,
        "width": size,
        "height": size,
        "neg_category_ids": neg,
        "not_exhaustive_category_ids": not_exhaustive,
    }


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")  # PIL adds no time or text chunk
    return buf.getvalue()


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"out: {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"out: {out} exists and is not empty; pass --overwrite to replace it")
        # Only what a previous run wrote goes: json files and PNGs of the split folders.
        for name in JSON_FILES + POOL_FILES:
            (out / name).unlink(missing_ok=True)
        for split in (*SPLITS, POOL):
            folder = out / "images" / split
            for png in folder.glob("*.png") if folder.is_dir() else []:
                png.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _categories(
    classes: tuple[SynthClass, ...], train_annotations: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    images = Counter(cid for _, cid in {(a["image_id"], a["category_id"]) for a in train_annotations})
    instances = Counter(a["category_id"] for a in train_annotations)
    return [
        {
            "id": c.id,
            "name": c.name,
            "synset": f"{c.name}.n.01",
            "synonyms": [c.name],
            "def": f"{'an' if c.colour[0] in 'aeiou' else 'a'} {c.colour} {c.family}, {c.texture}",
            "frequency": group_of(images[c.id]),
            "image_count": images[c.id],
            "instance_count": instances[c.id],
        }
        for c in classes
    ]


def _dump(
    out: Path, name: str, info: dict[str, Any], images: list[Any], anns: list[Any], cats: list[Any]
) -> None:
    doc = {"info": info, "licenses": [], "images": images, "annotations": anns, "categories": cats}
    atomic_write_bytes(out / name, json.dumps(doc, separators=(",", ":")).encode())


def generate(
    preset: str | Preset,
    seed: int,
    out: Path | str,
    overwrite: bool = False,
    pool_images: int | None = None,
    labeled_fraction: float | None = None,
) -> SynthSummary:
    """Write the benchmark under ``out``: train.json, val.json, unlabeled.json (images, no
    annotations), unlabeled_truth.json (the pool's complete annotations, for measuring what
    mining finds; never for training) and PNGs under images/{train,val,unlabeled}/.

    With ``pool_images`` > 0 (default: the preset's ``pool_images``) also the mining pool:
    pool.json (images only), pool_truth.json (its annotations, for measuring only) and PNGs under
    images/pool/; the other files are the same bytes with or without it (D80).

    Image and annotation ids are unique across all files. The json files are written last, so
    a train.json on disk means every image is there. Same preset and seed: the same bytes.

    With ``labeled_fraction`` F in (0, 1) (the SSOD label-fraction protocol, D107) only a seeded
    random F of the training images keeps its labels in train.json; the others are written into
    unlabeled.json first, without annotations, and into unlabeled_truth.json with all their
    instances, the unannotated ones included (``data.label_fraction``). Images stay under
    images/train/; categories and their LVIS groups are those of the full set; val.json and the
    pool do not change (the other files' info says ``labeled_fraction``). None or 1: every label.
    """
    p = get_preset(preset)
    if pool_images is not None:
        if isinstance(pool_images, bool) or not isinstance(pool_images, int) or pool_images < 0:
            raise InputError(f"pool_images: expected a non-negative integer, got {pool_images!r}")
        p = replace(p, pool_images=pool_images)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed: expected a non-negative integer, got {seed!r}")
    if labeled_fraction is not None:
        check_fraction(labeled_fraction, seed)  # a bad fraction fails before anything is written
    start = time.perf_counter()
    layouts = {split: split_layout(p, split, seed) for split in SPLITS}  # a bad preset fails here
    pool_layout = pool_plan(p, seed) if p.pool_images else None
    out = Path(out)
    _prepare_out(out, overwrite)
    classes = class_plan(p)
    image_id, ann_id = 1, 1
    records: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    unannotated: list[tuple[Any, int]] = []  # training instances left out of train.json
    for split in SPLITS:
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for k, present in enumerate(layouts[split]):
            img = synth_image(p, present, image_rng(seed, split, k), complete=split == "unlabeled")
            file_name = f"{split}/{image_id:06d}.png"
            atomic_write_bytes(out / "images" / file_name, _png(img.pixels))
            images.append(
                _image_record(
                    image_id, file_name, p.image_size, img.neg_category_ids, img.not_exhaustive_category_ids
                )
            )
            for inst in img.instances:
                if inst.annotated:
                    anns.append(inst.annotation(ann_id, image_id))
                    ann_id += 1
                elif split == "train":
                    unannotated.append((inst, image_id))
            image_id += 1
        records[split] = (images, anns)
    if pool_layout is not None:
        (out / "images" / POOL).mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for k, planned in enumerate(pool_layout):
            rng = image_rng(seed, POOL, k)
            img = distractor_image(p, rng) if planned is None else synth_image(p, planned, rng, complete=True)
            file_name = f"{POOL}/{image_id:06d}.png"
            atomic_write_bytes(out / "images" / file_name, _png(img.pixels))
            images.append(_image_record(image_id, file_name, p.image_size, [], []))
            for inst in img.instances:
                anns.append(inst.annotation(ann_id, image_id))
                ann_id += 1
            image_id += 1
        records[POOL] = (images, anns)
    cats = _categories(classes, records["train"][1])
    pool_images_only = [
        {**im, "neg_category_ids": [], "not_exhaustive_category_ids": []} for im in records["unlabeled"][0]
    ]
    fraction = 1.0 if labeled_fraction is None else labeled_fraction
    scarce = fraction < 1
    if scarce:
        # ids after every written one, so the files of a full-label benchmark keep their bytes
        hidden = [inst.annotation(ann_id + k, im_id) for k, (inst, im_id) in enumerate(unannotated)]
        part = split_labeled(
            {"images": records["train"][0], "annotations": records["train"][1]},
            {"images": pool_images_only, "annotations": []},
            {"images": records["unlabeled"][0], "annotations": records["unlabeled"][1]},
            fraction,
            seed,
            unannotated=hidden,
        )
        records["train"] = (part.train["images"], part.train["annotations"])
        records["unlabeled"] = (part.truth["images"], part.truth["annotations"])
        pool_images_only = part.unlabeled["images"]
    for split in SPLITS:
        info = {"description": DESCRIPTION, "version": "1", "preset": p.name, "seed": seed, "split": split}
        if scarce and split != "val":
            info["labeled_fraction"] = fraction
        images, anns = records[split]
        if split == "unlabeled":
            _dump(out, "unlabeled_truth.json", info, images, anns, cats)
            _dump(out, "unlabeled.json", info, pool_images_only, [], cats)
        else:
            _dump(out, f"{split}.json", info, images, anns, cats)
    if pool_layout is not None:
        images, anns = records[POOL]
        info = {"description": DESCRIPTION, "version": "1", "preset": p.name, "seed": seed, "split": POOL}
        distractors = sum(1 for present in pool_layout if present is None)
        _dump(out, "pool_truth.json", {**info, "distractor_images": distractors}, images, anns, cats)
        _dump(out, "pool.json", info, images, [], cats)
    group = {c.id: group_of(c.train_images) for c in classes}
    return SynthSummary(
        preset=p.name,
        seed=seed,
        out=out,
        groups={g: sum(1 for c in cats if c["frequency"] == g) for g in "rcf"},
        images={s: len(records[s][0]) for s in records},
        instances={s: len(records[s][1]) for s in records},
        group_instances={
            s: {g: sum(1 for a in records[s][1] if group[a["category_id"]] == g) for g in "rcf"}
            for s in records
        },
        seconds=time.perf_counter() - start,
    )
