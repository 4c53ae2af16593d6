"""Drawing for the embedded benchmark: shape polygons, textures, backgrounds, rasterisation.

Coordinates are pixels, x right, y down, origin at the top-left corner of the top-left pixel.
Every mask is rasterised by pycocotools from the very polygons that are stored in the json
(after rounding to 0.01 px), and exactly those pixels are painted, so the image and the mask
that any COCO/LVIS tool decodes from ``segmentation`` agree pixel for pixel.

Arrays: images are float32 [H, W, 3] in 0..255 while drawn, uint8 when written; masks bool [H, W].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pycocotools import mask as mask_utils

FloatImage = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]

FAMILIES = ("circle", "ellipse", "ring", "square", "hexagon", "triangle", "star", "cross")
TEXTURES = ("solid", "striped", "dotted")
# Pairs of near hues (red/orange, blue/teal, green/teal) are deliberate: they make look-alikes
# across variants of one family, as cat/dog or mug/cup do in LVIS.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (205, 45, 45),
    "orange": (230, 125, 35),
    "green": (55, 165, 70),
    "teal": (35, 160, 165),
    "blue": (45, 80, 205),
    # Near twins of red and blue, inside the per-instance jitter's reach: fine-detail look-alikes.
    "rose": (200, 45, 95),
    "violet": (95, 70, 205),
}

_CIRCLE_VERTICES = 32  # at a 23 px radius the chord is ≤ 0.11 px inside the circle
_RING_INNER_VERTICES = 24


@dataclass(frozen=True)
class Shape:
    """One object's geometry.

    polygons: the stored segmentation, flat [x1, y1, x2, y2, ...] lists rounded to 0.01 px.
    outline: the outer contour, the area the object claims when placing others (a ring's hole
        included, so nothing is placed inside a ring).
    """

    polygons: list[list[float]]
    outline: list[float]


def _circle(n: int, rx: float = 1.0, ry: float = 1.0) -> npt.NDArray[np.float64]:
    t = np.arange(n) * (2 * math.pi / n)
    return np.stack([rx * np.cos(t), ry * np.sin(t)], axis=1)


def _regular(n: int, phase: float) -> npt.NDArray[np.float64]:
    t = phase + np.arange(n) * (2 * math.pi / n)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _star(points: int, inner: float) -> npt.NDArray[np.float64]:
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    t = -math.pi / 2 + np.arange(2 * points) * (math.pi / points)
    return np.stack([radii * np.cos(t), radii * np.sin(t)], axis=1)


def _cross(w: float) -> npt.NDArray[np.float64]:
    """A plus sign with arms of half-width ``w``, scaled to circumradius 1."""
    pts = [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w)]
    pts += [(w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w)]
    return np.asarray(pts, dtype=np.float64) / math.hypot(1.0, w)


def _unit_contours(family: str, rng: np.random.Generator) -> list[npt.NDArray[np.float64]]:
    """Contours of a shape of circumradius 1 centred at 0; more than one only for the ring."""
    if family == "circle":
        return [_circle(_CIRCLE_VERTICES)]
    if family == "ellipse":
        return [_circle(_CIRCLE_VERTICES, 1.0, float(rng.uniform(0.5, 0.65)))]
    if family == "ring":
        return [_circle(_CIRCLE_VERTICES), _circle(_RING_INNER_VERTICES) * float(rng.uniform(0.5, 0.62))]
    if family == "square":
        return [_regular(4, math.pi / 4)]
    if family == "hexagon":
        return [_regular(6, 0.0)]
    if family == "triangle":
        return [_regular(3, -math.pi / 2)]
    if family == "star":
        return [_star(5, 0.45)]
    if family == "cross":
        return [_cross(0.32)]
    raise ValueError(f"family: expected one of {', '.join(FAMILIES)}, got {family!r}")


def _place(
    contour: npt.NDArray[np.float64], cx: float, cy: float, radius: float, angle: float
) -> list[float]:
    c, s = math.cos(angle), math.sin(angle)
    x = cx + radius * (c * contour[:, 0] - s * contour[:, 1])
    y = cy + radius * (s * contour[:, 0] + c * contour[:, 1])
    flat: list[float] = np.round(np.stack([x, y], axis=1).ravel(), 2).tolist()
    return flat


def make_shape(
    family: str, cx: float, cy: float, radius: float, angle: float, rng: np.random.Generator
) -> Shape:
    """A shape of the given family, circumradius ``radius`` px, rotated by ``angle`` rad.

    A ring is one polygon: outer contour, a zero-width slit to the inner contour, the inner
    contour the other way round and back. Polygon rasterisation (pycocotools, like any
    even-odd filler) cancels the slit's two coincident edges and leaves the hole empty; a
    COCO polygon list cannot express a hole otherwise (its polygons are unioned).
    """
    contours = _unit_contours(family, rng)
    outer = _place(contours[0], cx, cy, radius, angle)
    if len(contours) == 1:
        return Shape([outer], outer)
    c = contours[1]
    # Inner contour from the slit's end the other way round, back to the slit: the polygon's
    # closing edge then runs back along the slit to the outer start.
    inner = _place(np.concatenate([c[:1], c[:0:-1], c[:1]]), cx, cy, radius, angle)
    return Shape([outer + outer[:2] + inner], outer)


def rasterize(polygons: list[list[float]], height: int, width: int) -> Mask:
    """The pixels pycocotools assigns to the union of ``polygons`` (what evaluators decode)."""
    rles = mask_utils.frPyObjects(polygons, height, width)
    return np.asarray(mask_utils.decode(mask_utils.merge(rles)), dtype=bool)


def object_colour(name: str, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """A colour of the named hue with per-instance jitter (tint and brightness)."""
    base = np.asarray(COLOURS[name], dtype=np.float64)
    jittered = (base + rng.normal(0.0, 10.0, 3)) * rng.uniform(0.85, 1.15)
    return np.clip(jittered, 0.0, 255.0)


def texture(
    kind: str,
    colour: npt.NDArray[np.float64],
    xs: npt.NDArray[np.int64],
    ys: npt.NDArray[np.int64],
    rng: np.random.Generator,
) -> npt.NDArray[np.float32]:
    """The colours [n, 3] of the given texture at pixels (xs[i], ys[i]).

    striped: bands of the colour and a darker shade, random angle, period 4-6 px.
    dotted: the colour with a lattice of light dots, random phase, spacing 4.5-6 px.
    """
    x, y = xs + 0.5, ys + 0.5  # pixel centres
    if kind == "solid":
        pattern = np.zeros(x.shape)
        second = colour
    elif kind == "striped":
        theta, period = rng.uniform(0.0, math.pi), rng.uniform(4.0, 6.0)
        phase = (x * math.cos(theta) + y * math.sin(theta)) / period + rng.uniform(0.0, 1.0)
        pattern = (phase % 1.0 < 0.5).astype(np.float64)
        second = colour * 0.55
    elif kind == "dotted":
        spacing = rng.uniform(4.5, 6.0)
        ox, oy = rng.uniform(0.0, spacing, 2)
        dx = (x + ox) % spacing - spacing / 2
        dy = (y + oy) % spacing - spacing / 2
        pattern = (np.hypot(dx, dy) < 0.3 * spacing).astype(np.float64)
        second = colour + 0.6 * (255.0 - colour)
    else:
        raise ValueError(f"texture: expected one of {', '.join(TEXTURES)}, got {kind!r}")
    out = colour[None, :] * (1.0 - pattern[:, None]) + second[None, :] * pattern[:, None]
    return out.astype(np.float32)


def _upsample(grid: npt.NDArray[np.float64], size: int) -> npt.NDArray[np.float64]:
    """Bilinear [g, g, 3] -> [size, size, 3], corners aligned (numpy only, so bytes do not
    depend on an image library's resampling code)."""
    g = grid.shape[0]
    pos = np.linspace(0.0, g - 1.0, size)
    lo = np.minimum(pos.astype(int), g - 2)
    frac = (pos - lo)[:, None]
    rows = grid[lo] * (1 - frac[..., None]) + grid[lo + 1] * frac[..., None]
    out: npt.NDArray[np.float64] = rows[:, lo] * (1 - frac[None, ...]) + rows[:, lo + 1] * frac[None, ...]
    return out


def background(size: int, rng: np.random.Generator) -> FloatImage:
    """A muted, smoothly varying colour field with 0-3 unannotated clutter blobs.

    The blobs are irregular polygons of low saturation: things a detector must learn are not
    objects, as LVIS images are full of unannotated stuff.
    """
    grid = rng.uniform(70.0, 190.0, (4, 4, 3))
    grid = grid.mean(axis=2, keepdims=True) + 0.45 * (grid - grid.mean(axis=2, keepdims=True))
    image = _upsample(grid, size)
    for _ in range(int(rng.integers(0, 4))):
        n = 7
        radii = rng.uniform(0.5, 1.0, n) * rng.uniform(0.05, 0.14) * size
        t = np.arange(n) * (2 * math.pi / n) + rng.uniform(0.0, 2 * math.pi)
        cx, cy = rng.uniform(0.0, size, 2)
        flat = np.stack([cx + radii * np.cos(t), cy + radii * np.sin(t)], axis=1).ravel()
        grey = rng.uniform(60.0, 200.0)
        tint = grey + rng.normal(0.0, 12.0, 3)
        image[rasterize([flat.tolist()], size, size)] = tint
    return image.astype(np.float32)


def finish(image: FloatImage, rng: np.random.Generator, noise: float = 7.0) -> npt.NDArray[np.uint8]:
    """Per-pixel Gaussian noise over everything (objects included), rounded to uint8."""
    noisy = image + rng.normal(0.0, noise, image.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Look:
    """What a class looks like: shape family, colour name, texture name."""

    family: str
    colour: str
    texture: str


@dataclass
class DrawnObject:
    """One object as drawn: its stored polygons and the exact pixels painted for it.
    ``annotated`` is cleared by the caller for an instance left out of the annotations."""

    category_id: int
    polygons: list[list[float]]
    mask: Mask
    annotated: bool = True

    def annotation(self, ann_id: int, image_id: int) -> dict[str, Any]:
        """The LVIS record: area is the mask's pixel count, bbox its tight box [x, y, w, h]."""
        ys, xs = np.nonzero(self.mask)
        x0, y0 = int(xs.min()), int(ys.min())
        bbox = [float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)]
        return {
            "id": ann_id,
            "image_id": image_id,
            "category_id": self.category_id,
            "segmentation": self.polygons,
            "area": float(self.mask.sum()),
            "bbox": bbox,
            "iscrowd": 0,
        }


_REQUIRED_TRIES, _OPTIONAL_TRIES = 80, 15


def _fit(
    family: str,
    size: int,
    diameter: tuple[float, float],
    occupied: Mask,
    tries: int,
    rng: np.random.Generator,
) -> tuple[Shape, Mask] | None:
    """Rejection sampling of a shape whose outline shares no pixel with ``occupied``; later
    tries draw smaller sizes, so a crowded image still fits every required object."""
    lo, hi = diameter[0] * size, diameter[1] * size
    for t in range(tries):
        radius = rng.uniform(lo, hi - (hi - lo) * t / tries) / 2
        cx, cy = rng.uniform(radius + 1, size - radius - 1, 2)
        shape = make_shape(family, cx, cy, radius, rng.uniform(0, 2 * math.pi), rng)
        footprint = rasterize([shape.outline], size, size)
        if not (footprint & occupied).any():
            return shape, footprint
    return None


def compose(
    objects: Sequence[tuple[int, Look, bool]],
    size: int,
    diameter: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.uint8], list[DrawnObject]]:
    """Draw ``objects`` (category id, look, required) on a background, in order.

    Objects never share a pixel (no occlusion), so each stored polygon is the object's whole
    visible extent. An optional object that finds no room is skipped; a required one raises.
    ``diameter``: the range of object diameters as fractions of the image side.

    Returns the uint8 [size, size, 3] image and the objects drawn.
    """
    pixels = background(size, rng)
    occupied = np.zeros((size, size), dtype=bool)
    drawn: list[DrawnObject] = []
    for category_id, look, required in objects:
        tries = _REQUIRED_TRIES if required else _OPTIONAL_TRIES
        fitted = _fit(look.family, size, diameter, occupied, tries, rng)
        if fitted is None:
            if required:
                raise RuntimeError(
                    f"no room left for a {look.family} in a {size} px image; lower the density"
                )
            continue
        shape, footprint = fitted
        occupied |= footprint
        mask = rasterize(shape.polygons, size, size)
        ys, xs = np.nonzero(mask)
        pixels[ys, xs] = texture(look.texture, object_colour(look.colour, rng), xs, ys, rng)
        drawn.append(DrawnObject(category_id, shape.polygons, mask))
    return finish(pixels, rng), drawn
