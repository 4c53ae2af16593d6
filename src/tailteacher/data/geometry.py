"""The geometry of an augmented view, and mapping boxes and masks between views of one image.

Shapes:
    N  instances      H, W  source canvas (rows, columns)      h, w  view canvas

Coordinates are continuous pixel coordinates: pixel (row r, column c) covers [c, c+1) × [r, r+1),
so the tight box of a mask is (min col, min row, max col + 1, max row + 1) and a horizontal flip
maps x → w − x exactly. A `Geometry` is the affine map, from the source canvas to the view,
of a resize followed by an optional horizontal flip:

    x' = sx · x   (then x' ← w − x' when flipped)        y' = sy · y
    sx = w / W,  sy = h / H

The scales are defined by the integer canvas sizes, not by the sampled jitter factor, so that the
inverse and the composition of two geometries are again geometries with exact scales; mapping a
weak view's boxes into a strong view of the same image then gives the strong view's boxes up to
float rounding. Cutout and photometric operations change no coordinates and are not recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

MaskMode = Literal["nearest", "bilinear"]

# A soft (float) mask counts a pixel as "in" from this value on: a bilinear resample of a
# binary mask is thresholded here, and a float mask is non-empty when some pixel reaches it.
MASK_THRESHOLD = 0.5


def _size(name: str, value: Any) -> tuple[int, int]:
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        raise ValueError(f"{name}: expected (height, width), two integers ≥ 1, got {value!r}")
    return int(value[0]), int(value[1])


@dataclass(frozen=True)
class Geometry:
    """Resize from ``in_size`` to ``out_size``, then a horizontal flip when ``flip``.

    Attributes:
        in_size: (H, W) of the canvas the map starts from (the original image, for a view).
        out_size: (h, w) of the canvas it ends in (the view).
        flip: whether the resized canvas is mirrored left–right.
    """

    in_size: tuple[int, int]
    out_size: tuple[int, int]
    flip: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_size", _size("in_size", self.in_size))
        object.__setattr__(self, "out_size", _size("out_size", self.out_size))
        if not isinstance(self.flip, bool):
            raise ValueError(f"flip: expected a bool, got {self.flip!r}")

    @property
    def scale_x(self) -> float:
        """w / W: view pixels per source pixel along x."""
        return self.out_size[1] / self.in_size[1]

    @property
    def scale_y(self) -> float:
        """h / H: view pixels per source pixel along y."""
        return self.out_size[0] / self.in_size[0]

    @classmethod
    def identity(cls, size: tuple[int, int]) -> Geometry:
        """The map of a canvas of ``size`` (h, w) onto itself."""
        return cls(in_size=size, out_size=size, flip=False)

    def inverse(self) -> Geometry:
        """The map from the view back to the source canvas (a flip commutes with a resize)."""
        return Geometry(in_size=self.out_size, out_size=self.in_size, flip=self.flip)

    def then(self, other: Geometry) -> Geometry:
        """``other ∘ self``: first this map, then ``other`` (whose input is this map's output)."""
        if other.in_size != self.out_size:
            raise ValueError(
                f"cannot compose: this geometry ends in a canvas of {self.out_size}, "
                f"the next one starts from {other.in_size}"
            )
        return Geometry(in_size=self.in_size, out_size=other.out_size, flip=self.flip != other.flip)

    def matrix(self) -> torch.Tensor:
        """[3, 3] float64 homogeneous matrix A with (x', y', 1)ᵀ = A (x, y, 1)ᵀ."""
        a = torch.tensor(
            [[self.scale_x, 0.0, 0.0], [0.0, self.scale_y, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64
        )
        if self.flip:
            a[0] = torch.tensor([-self.scale_x, 0.0, float(self.out_size[1])], dtype=torch.float64)
        return a

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable record; `from_dict` reads it back."""
        return {"in_size": list(self.in_size), "out_size": list(self.out_size), "flip": self.flip}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Geometry:
        """Inverse of `to_dict`; raises ValueError naming the bad field."""
        missing = {"in_size", "out_size", "flip"} - set(record)
        if missing:
            raise ValueError(f"geometry record: missing field(s) {sorted(missing)}")
        return cls(
            in_size=record["in_size"],  # a list from JSON; __post_init__ makes it a tuple
            out_size=record["out_size"],
            flip=record["flip"],
        )


class Mapped(NamedTuple):
    """Boxes and masks carried into another canvas, with the instances kept.

    Attributes:
        boxes: [K, 4] XYXY in the target canvas, clipped to it (None when none were given).
        masks: [K, h, w] (None when none were given); bool for bool/integer input, float for float.
        keep: [N] bool over the input instances; K = keep.sum(). Index labels and scores with it.
    """

    boxes: torch.Tensor | None
    masks: torch.Tensor | None
    keep: torch.Tensor


def _check_boxes(boxes: torch.Tensor) -> torch.Tensor:
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        shape = list(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise ValueError(f"boxes: expected a [N, 4] XYXY tensor, got {shape}")
    if isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format != tv_tensors.BoundingBoxFormat.XYXY:
        raise ValueError(f"boxes: expected XYXY boxes, got {boxes.format.name}; convert them first")
    if boxes.is_complex() or boxes.dtype == torch.bool:
        raise ValueError(f"boxes: expected a real tensor, got {boxes.dtype}")
    return boxes if boxes.is_floating_point() else boxes.to(torch.float32)


def _check_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if not isinstance(masks, torch.Tensor) or masks.dim() != 3 or tuple(masks.shape[1:]) != size:
        shape = list(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"masks: expected a [N, {size[0]}, {size[1]}] tensor, got {shape}")
    if masks.is_complex():
        raise ValueError(f"masks: expected a bool, integer or floating tensor, got {masks.dtype}")
    return masks


def _nearest_index(n_in: int, n_out: int, flip: bool, device: torch.device) -> torch.Tensor:
    # Sample each target pixel at its centre (torchvision's NEAREST_EXACT; its default NEAREST
    # samples at the corner and shifts masks by up to half a source pixel against the boxes).
    idx = ((torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * (n_in / n_out)).floor_()
    idx = idx.long().clamp_(0, n_in - 1)
    return idx.flip(0) if flip else idx


def _resample_masks(masks: torch.Tensor, geometry: Geometry, mode: MaskMode) -> torch.Tensor:
    """[N, H, W] → [N, h, w], flipped when the geometry flips; bool/integer masks come back bool."""
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"mask_mode: expected 'nearest' or 'bilinear', got {mode!r}")
    size = geometry.out_size
    soft = masks.is_floating_point()
    if masks.shape[0] == 0:
        return masks.new_zeros((0, *size), dtype=masks.dtype if soft else torch.bool)
    src = masks if soft or masks.dtype == torch.bool else masks != 0
    if mode == "nearest" or tuple(masks.shape[1:]) == size:
        # Index selection does the resize and the flip in one pass, on bool masks as they are.
        rows = _nearest_index(masks.shape[1], size[0], False, masks.device)
        cols = _nearest_index(masks.shape[2], size[1], geometry.flip, masks.device)
        return src.index_select(1, rows).index_select(2, cols)
    # Antialiasing makes a downscale average the covered area, so the 0.5 threshold keeps
    # a pixel when most of it was inside the mask.
    out: torch.Tensor = TF.resize_image(
        (src if src.dtype == torch.float64 else src.to(torch.float32)).unsqueeze(1),
        list(size),
        interpolation=InterpolationMode.BILINEAR,
        antialias=True,
    ).squeeze(1)
    if geometry.flip:
        out = TF.horizontal_flip(tv_tensors.Mask(out)).as_subclass(torch.Tensor)
    return out.to(masks.dtype) if soft else out >= MASK_THRESHOLD


def apply_geometry(
    geometry: Geometry,
    *,
    boxes: torch.Tensor | None = None,
    masks: torch.Tensor | None = None,
    mask_mode: MaskMode = "nearest",
    min_size: float = 1.0,
) -> Mapped:
    """Carry boxes and masks from ``geometry.in_size`` into ``geometry.out_size``.

    Boxes are mapped exactly (then clipped to the target canvas); masks are resampled. An
    instance is dropped when its clipped box is narrower or shorter than ``min_size`` target
    pixels (or not finite), or when its resampled mask has no pixel (≥ 0.5 for float masks).

    Args:
        geometry: the map to apply.
        boxes: [N, 4] XYXY in source pixels, any real dtype (integers become float32).
        masks: [N, H, W] bool, integer (non-zero = in) or float (soft, resampled as values),
            with (H, W) = ``geometry.in_size``.
        mask_mode: "nearest" (pixel centres; right for masks that are labels) or "bilinear"
            (antialiased; bool masks are thresholded at 0.5, float masks stay soft).
        min_size: smallest kept box side, in target pixels (torchvision's SanitizeBoundingBoxes
            default is 1).

    Returns:
        `Mapped` with the kept instances and the [N] keep mask.
    """
    h, w = geometry.out_size
    n: int | None = None
    out_boxes: torch.Tensor | None = None
    out_masks: torch.Tensor | None = None
    keep: torch.Tensor | None = None
    if boxes is not None:
        b = _check_boxes(boxes)
        n = b.shape[0]
        x = b[:, 0::2] * geometry.scale_x
        y = b[:, 1::2] * geometry.scale_y
        if geometry.flip:
            # Mirroring swaps the sides: the new left edge is the old right one.
            x = w - x.flip(1)
        out_boxes = torch.stack(
            [x[:, 0].clamp(0, w), y[:, 0].clamp(0, h), x[:, 1].clamp(0, w), y[:, 1].clamp(0, h)], dim=1
        ).to(b.dtype)
        keep = torch.isfinite(out_boxes).all(dim=1)
        keep &= (out_boxes[:, 2] - out_boxes[:, 0] >= min_size) & (
            out_boxes[:, 3] - out_boxes[:, 1] >= min_size
        )
    if masks is not None:
        m = _check_masks(masks, geometry.in_size)
        if n is not None and m.shape[0] != n:
            raise ValueError(f"masks: {m.shape[0]} masks for {n} boxes; expected one mask per box")
        n = m.shape[0]
        out_masks = _resample_masks(m, geometry, mask_mode)
        filled = (out_masks >= MASK_THRESHOLD) if out_masks.is_floating_point() else out_masks
        nonempty = filled.flatten(1).any(dim=1)
        keep = nonempty if keep is None else keep & nonempty.to(keep.device)
    if keep is None:
        raise ValueError("apply_geometry: give boxes, masks or both")
    if not bool(keep.all()):
        out_boxes = None if out_boxes is None else out_boxes[keep]
        out_masks = None if out_masks is None else out_masks[keep.to(out_masks.device)]
    return Mapped(out_boxes, out_masks, keep)


def map_between(
    weak: Geometry,
    strong: Geometry,
    *,
    boxes: torch.Tensor | None = None,
    masks: torch.Tensor | None = None,
    mask_mode: MaskMode = "bilinear",
    min_size: float = 1.0,
) -> Mapped:
    """Carry predictions made on one view of an image into another view of the same image.

    The map is ``strong ∘ weak⁻¹``, itself a resize from the weak view's size to the strong
    view's size, flipped when exactly one of the views is flipped.

    Args:
        weak: geometry of the view the predictions are in (the teacher's weak view).
        strong: geometry of the target view (the student's strong view); same ``in_size``.
        boxes: [N, 4] XYXY in weak-view pixels.
        masks: [N, h_weak, w_weak], bool/integer or float (soft masks stay soft).
        mask_mode: "bilinear" by default: masks are usually upsampled here, where nearest
            gives staircase edges.
        min_size: smallest kept box side, in strong-view pixels.

    Returns:
        `Mapped` in strong-view pixels, with the [N] keep mask.
    """
    if weak.in_size != strong.in_size:
        raise ValueError(
            f"map_between: the views come from different images ({weak.in_size} and {strong.in_size})"
        )
    return apply_geometry(
        weak.inverse().then(strong), boxes=boxes, masks=masks, mask_mode=mask_mode, min_size=min_size
    )
