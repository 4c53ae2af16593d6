"""Weak and strong augmentations for the teacher–student step, with their geometry recorded.

Shapes:
    N  instances      H, W  original image (rows, columns)      h, w  one view

The teacher sees a *weak* view of an unlabeled image (scale jitter 0.9–1.1, horizontal flip), the
student a *strong* view of the same image (scale jitter 0.5–1.5, flip, colour jitter, random
grayscale, Gaussian blur, cutout). Each view carries the `Geometry` (resize, then optional flip)
that made it from the original, so that `geometry.map_between(weak.geometry, strong.geometry,
boxes=..., masks=...)` carries the teacher's detections into the student's view.

Images go in as uint8 [3, H, W] (0–255) or floating [3, H, W] in [0, 1] and come out as float32
[3, h, w] in [0, 1]. Photometric operations and cutout touch the image only: boxes and masks
move with the geometry alone, so an object hidden by a cutout patch keeps its box and mask.

Every random number comes from the (CPU) `torch.Generator` passed in, never the global RNG; every
operation draws the same count of numbers whether or not it fires, so the same seed gives the
same views and changing one probability does not reshuffle the other operations' draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from .geometry import Geometry, Mapped, MaskMode, apply_geometry, map_between

__all__ = [
    "Augmentation",
    "Geometry",
    "Mapped",
    "Photometric",
    "ScaleFlip",
    "View",
    "apply_geometry",
    "gaussian_blur",
    "map_between",
    "strong_augmentation",
    "to_float_image",
    "weak_augmentation",
    "weak_strong_views",
]


def _uniform(generator: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


def _check_range(name: str, rng: tuple[float, float], *, lo: float, hi: float = math.inf) -> None:
    if len(rng) != 2 or not (lo <= rng[0] <= rng[1] <= hi):
        raise ValueError(f"{name}: expected (low, high) with {lo} ≤ low ≤ high ≤ {hi}, got {rng!r}")


def _check_probability(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1], got {p!r}")


def gaussian_blur(image: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """`torchvision.transforms.v2.functional.gaussian_blur` of a float [C, h, w], done separably.

    The same kernel and reflect padding (results equal within 1e-6). torchvision runs a k × k depthwise
    conv2d, which on CPU took ~86 ms for k = 13 on a 3 × 720 × 960 image; two passes of k
    shifted multiply-adds took ~6 ms.
    """
    r = kernel_size // 2
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    weights: list[float] = torch.softmax(-(x * x) / (2.0 * sigma * sigma), dim=0).tolist()
    h, w = image.shape[-2:]
    padded = torch.nn.functional.pad(image.unsqueeze(0), [r, r, r, r], mode="reflect").squeeze(0)
    rows = padded[:, :, 0:w] * weights[0]
    for i in range(1, kernel_size):
        rows.add_(padded[:, :, i : i + w], alpha=weights[i])
    out = rows[:, 0:h] * weights[0]
    for i in range(1, kernel_size):
        out.add_(rows[:, i : i + h], alpha=weights[i])
    return out


#: How far outside [0, 1] a floating image may lie (resampling's rounding) before it is refused.
FLOAT_TOLERANCE = 1e-3


def to_float_image(image: torch.Tensor) -> torch.Tensor:
    """uint8 [3, H, W] (0–255) or floating [3, H, W] in [0, 1] → a new float32 [3, H, W] in [0, 1]."""
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 3 or image.numel() == 0:
        shape = list(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image: expected a [3, H, W] tensor with H, W ≥ 1, got {shape}")
    if image.dtype == torch.uint8:
        return image.to(torch.float32).div_(255.0)
    if not image.is_floating_point():
        raise ValueError(f"image: expected uint8 (0–255) or floating (0–1), got {image.dtype}")
    lo, hi = torch.aminmax(image)
    # A float image in 0–255 would silently saturate every colour op; say so instead. Resampling
    # (bilinear, antialias) overshoots [0, 1] by rounding error: tolerated, then clamped.
    if not (float(lo) >= -FLOAT_TOLERANCE and float(hi) <= 1.0 + FLOAT_TOLERANCE):
        raise ValueError(
            f"image: a floating image must lie in [0, 1], got values in [{float(lo):g}, {float(hi):g}]"
            " (pass uint8 for 0–255)"
        )
    # A copy even when already float32: a view must never share storage with the caller's image.
    out = image.to(torch.float32, copy=True)
    return out.clamp_(0.0, 1.0) if float(lo) < 0.0 or float(hi) > 1.0 else out


@dataclass(frozen=True)
class ScaleFlip:
    """Aspect-preserving scale jitter, then a horizontal flip: the geometric part of a view.

    The view's size is round((H, W) · s) with s = base · U(scale_range), where base is 1, or
    ``short_side / min(H, W)`` when ``short_side`` is set; s is then lowered, if needed, so that
    the long side is at most ``max_long_side``.

    Attributes:
        scale_range: (low, high) of the uniform jitter factor, > 0.
        flip_p: probability of a horizontal flip.
        short_side: target short side before jitter (None: keep the image's size).
        max_long_side: cap on the view's long side (None: no cap).
    """

    scale_range: tuple[float, float] = (0.9, 1.1)
    flip_p: float = 0.5
    short_side: int | None = None
    max_long_side: int | None = None

    def __post_init__(self) -> None:
        _check_range("scale_range", self.scale_range, lo=0.0)
        if self.scale_range[0] <= 0:
            raise ValueError(f"scale_range: expected scales > 0, got {self.scale_range!r}")
        _check_probability("flip_p", self.flip_p)
        for name in ("short_side", "max_long_side"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name}: expected None or an integer ≥ 1, got {value!r}")

    def sample(self, size: tuple[int, int], generator: torch.Generator) -> Geometry:
        """Draw the geometry of one view of an image of ``size`` (H, W)."""
        height, width = size
        jitter = _uniform(generator, *self.scale_range)
        flip = float(torch.rand((), generator=generator)) < self.flip_p
        scale = jitter * (1.0 if self.short_side is None else self.short_side / min(height, width))
        if self.max_long_side is not None:
            scale = min(scale, self.max_long_side / max(height, width))
        out = (max(1, round(height * scale)), max(1, round(width * scale)))
        return Geometry(in_size=(height, width), out_size=out, flip=flip)


@dataclass(frozen=True)
class Photometric:
    """The strong view's image-only operations, applied in this order after the geometry.

    Defaults follow the strong augmentations of SSL detectors (Unbiased Teacher, Soft Teacher):

    Attributes:
        brightness, contrast, saturation: jitter strength b; the factor is U(max(0, 1 − b), 1 + b).
        hue: hue shift U(−hue, hue), in [0, 0.5] (fractions of the colour wheel).
        color_jitter_p: probability of applying the colour jitter (its four ops in random order).
        grayscale_p: probability of converting to grayscale (kept as 3 channels).
        blur_p: probability of a Gaussian blur.
        blur_sigma: (low, high) of its σ in view pixels; the kernel is 2·⌈3σ⌉ + 1 wide.
        cutout_count: (low, high) inclusive number of erased rectangles.
        cutout_side: (low, high) of each rectangle's side as a fraction of the view's side
            (height and width drawn separately).
        cutout_fill: the value the rectangles are filled with (0.5: mid-grey).
    """

    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    color_jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    cutout_count: tuple[int, int] = (1, 5)
    cutout_side: tuple[float, float] = (0.05, 0.2)
    cutout_fill: float = 0.5

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: expected a strength ≥ 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue: expected a value in [0, 0.5], got {self.hue!r}")
        for name in ("color_jitter_p", "grayscale_p", "blur_p"):
            _check_probability(name, getattr(self, name))
        _check_range("blur_sigma", self.blur_sigma, lo=0.0)
        if self.blur_sigma[0] <= 0:
            raise ValueError(f"blur_sigma: expected σ > 0, got {self.blur_sigma!r}")
        if not all(isinstance(c, int) for c in self.cutout_count):
            raise ValueError(f"cutout_count: expected two integers, got {self.cutout_count!r}")
        _check_range("cutout_count", self.cutout_count, lo=0)
        _check_range("cutout_side", self.cutout_side, lo=0.0, hi=1.0)
        if not 0.0 <= self.cutout_fill <= 1.0:
            raise ValueError(f"cutout_fill: expected a value in [0, 1], got {self.cutout_fill!r}")

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """float [3, h, w] in [0, 1] → float [3, h, w] in [0, 1] (a new tensor)."""
        g = generator
        out = image
        # Colour jitter: always 1 + 4 + 4 draws (apply, order, factors).
        apply_jitter = float(torch.rand((), generator=g)) < self.color_jitter_p
        order = torch.randperm(4, generator=g).tolist()
        factors = [
            _uniform(g, max(0.0, 1.0 - self.brightness), 1.0 + self.brightness),
            _uniform(g, max(0.0, 1.0 - self.contrast), 1.0 + self.contrast),
            _uniform(g, max(0.0, 1.0 - self.saturation), 1.0 + self.saturation),
            _uniform(g, -self.hue, self.hue),
        ]
        if apply_jitter:
            ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
            for k in order:
                # A zero strength leaves the op out, as torchvision's ColorJitter does.
                if factors[k] != (0.0 if k == 3 else 1.0):
                    out = ops[k](out, factors[k])
        if float(torch.rand((), generator=g)) < self.grayscale_p:
            out = TF.rgb_to_grayscale(out, num_output_channels=3)
        apply_blur = float(torch.rand((), generator=g)) < self.blur_p
        sigma = _uniform(g, *self.blur_sigma)
        if apply_blur:
            # Reflect padding needs the half-kernel to be shorter than the image.
            limit = 2 * min(out.shape[-2:]) - 1
            k = min(2 * math.ceil(3 * sigma) + 1, limit if limit % 2 else limit - 1)
            if k > 1:
                out = gaussian_blur(out, k, sigma)
        return self._cutout(out, g)

    def _cutout(self, image: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        lo, hi = self.cutout_count
        count = int(torch.randint(lo, hi + 1, (), generator=g))
        # Draw for the largest count, so the stream does not depend on the count drawn.
        draws = torch.rand((hi, 4), generator=g, dtype=torch.float64).tolist()
        # Erasing works in place; never write into the caller's tensor.
        out = image.clone() if count else image
        h, w = image.shape[-2:]
        fill = torch.tensor(self.cutout_fill, dtype=out.dtype, device=out.device)
        for u_h, u_w, u_top, u_left in draws[:count]:
            ph = max(1, round(h * (self.cutout_side[0] + (self.cutout_side[1] - self.cutout_side[0]) * u_h)))
            pw = max(1, round(w * (self.cutout_side[0] + (self.cutout_side[1] - self.cutout_side[0]) * u_w)))
            top = min(int(u_top * (h - ph + 1)), h - ph)
            left = min(int(u_left * (w - pw + 1)), w - pw)
            out = TF.erase(out, top, left, ph, pw, fill, inplace=True)
        return out


@dataclass(frozen=True)
class View:
    """One augmented view of an image and its instances.

    Attributes:
        image: tv_tensors.Image, float32 [3, h, w] in [0, 1].
        boxes: tv_tensors.BoundingBoxes [K, 4] XYXY on canvas (h, w), or None if none were given.
        masks: tv_tensors.Mask [K, h, w] bool (float if float masks were given), or None.
        keep: [N] bool over the input instances (K = keep.sum()); index labels with it.
        geometry: the map from the original image's pixels to this view's.
    """

    image: torch.Tensor
    boxes: torch.Tensor | None
    masks: torch.Tensor | None
    keep: torch.Tensor
    geometry: Geometry


@dataclass(frozen=True)
class Augmentation:
    """A geometric part and an optional photometric part; call it to make a `View`.

    Attributes:
        geometric: scale jitter and flip.
        photometric: image-only operations (None for the weak view).
        mask_mode: how instance masks are resampled ("nearest": pixel centres, masks stay exact labels).
        min_size: instances whose box side falls under this many view pixels are dropped.
    """

    geometric: ScaleFlip = field(default_factory=ScaleFlip)
    photometric: Photometric | None = None
    mask_mode: MaskMode = "nearest"
    min_size: float = 1.0

    def __call__(
        self,
        image: torch.Tensor,
        *,
        boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        generator: torch.Generator,
    ) -> View:
        """Make one view.

        Args:
            image: uint8 [3, H, W] (0–255) or floating [3, H, W] in [0, 1].
            boxes: [N, 4] XYXY in image pixels.
            masks: [N, H, W] bool / integer (non-zero = in) / float.
            generator: the only source of randomness.
        """
        img = to_float_image(image)
        size = (int(img.shape[1]), int(img.shape[2]))
        geometry = self.geometric.sample(size, generator)
        out = tv_tensors.Image(img)
        if geometry.out_size != size:
            out = TF.resize(
                out, list(geometry.out_size), interpolation=InterpolationMode.BILINEAR, antialias=True
            )
        if geometry.flip:
            out = TF.horizontal_flip(out)
        if self.photometric is not None:
            out = tv_tensors.Image(self.photometric(out.as_subclass(torch.Tensor), generator))
        if boxes is None and masks is None:
            return View(out, None, None, torch.zeros(0, dtype=torch.bool), geometry)
        mapped = apply_geometry(
            geometry, boxes=boxes, masks=masks, mask_mode=self.mask_mode, min_size=self.min_size
        )
        out_boxes = (
            None
            if mapped.boxes is None
            else tv_tensors.BoundingBoxes(mapped.boxes, format="XYXY", canvas_size=geometry.out_size)
        )
        out_masks = None if mapped.masks is None else tv_tensors.Mask(mapped.masks)
        return View(out, out_boxes, out_masks, mapped.keep, geometry)


def weak_augmentation(*, short_side: int | None = None, max_long_side: int | None = None) -> Augmentation:
    """The teacher's view: scale jitter 0.9–1.1 and a flip with p = 0.5, nothing photometric."""
    return Augmentation(ScaleFlip((0.9, 1.1), 0.5, short_side, max_long_side))


def strong_augmentation(
    *,
    short_side: int | None = None,
    max_long_side: int | None = None,
    photometric: Photometric | None = None,
) -> Augmentation:
    """The student's view: scale jitter 0.5–1.5, flip p = 0.5, and ``photometric`` (default:
    `Photometric`'s defaults)."""
    return Augmentation(
        ScaleFlip((0.5, 1.5), 0.5, short_side, max_long_side),
        Photometric() if photometric is None else photometric,
    )


def weak_strong_views(
    image: torch.Tensor,
    *,
    boxes: torch.Tensor | None = None,
    masks: torch.Tensor | None = None,
    generator: torch.Generator,
    weak: Augmentation | None = None,
    strong: Augmentation | None = None,
) -> tuple[View, View]:
    """A weak and a strong view of the same image, drawn in that order from ``generator``.

    Args:
        image: uint8 [3, H, W] or floating [3, H, W] in [0, 1].
        boxes: [N, 4] XYXY, masks: [N, H, W] (optional; ground truth when there is some).
        generator: the only source of randomness.
        weak, strong: the augmentations (default `weak_augmentation()`, `strong_augmentation()`).

    Returns:
        (weak view, strong view); map the teacher's weak-view predictions into the strong view
        with ``map_between(weak_view.geometry, strong_view.geometry, boxes=..., masks=...)``.
    """
    weak = weak_augmentation() if weak is None else weak
    strong = strong_augmentation() if strong is None else strong
    return (
        weak(image, boxes=boxes, masks=masks, generator=generator),
        strong(image, boxes=boxes, masks=masks, generator=generator),
    )
