"""Weak/strong views keep boxes and masks on their objects, and weak-view labels map into the strong view."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from tailteacher.data.geometry import Geometry, MaskMode, apply_geometry, map_between
from tailteacher.data.transforms import (
    Augmentation,
    Photometric,
    ScaleFlip,
    gaussian_blur,
    strong_augmentation,
    to_float_image,
    weak_augmentation,
    weak_strong_views,
)

H, W = 192, 256  # not square, so a swapped x/y shows

# (x1, y1, x2, y2) of the filled rectangles, in pixels: two large ones, one touching the right
# border, one small (8 px in a view at scale 0.5).
RECTS = [(20, 16, 100, 96), (110, 120, 190, 176), (200, 40, W, 110), (30, 150, 46, 166)]
DISK = (150.0, 60.0, 40.0)  # centre x, centre y, radius
COLOURS = [(230, 20, 20), (20, 230, 20), (20, 20, 230), (20, 230, 230), (230, 230, 20)]


def _rect_mask(box: tuple[float, float, float, float], h: int, w: int) -> torch.Tensor:
    """Pixels whose centre lies in [x1, x2) × [y1, y2)."""
    ys = torch.arange(h, dtype=torch.float64)[:, None] + 0.5
    xs = torch.arange(w, dtype=torch.float64)[None, :] + 0.5
    return (xs >= box[0]) & (xs < box[2]) & (ys >= box[1]) & (ys < box[3])


def _ellipse_mask(cx: float, cy: float, rx: float, ry: float, h: int, w: int) -> torch.Tensor:
    ys = torch.arange(h, dtype=torch.float64)[:, None] + 0.5
    xs = torch.arange(w, dtype=torch.float64)[None, :] + 0.5
    return ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0


def _tight_box(mask: torch.Tensor) -> torch.Tensor:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum()) / max(1, int((a | b).sum()))


def _scene() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 image [3, H, W], boxes [5, 4], masks [5, H, W] of four rectangles and a disk."""
    masks = torch.stack([_rect_mask(r, H, W) for r in RECTS] + [_ellipse_mask(*DISK, DISK[2], H, W)])
    image = torch.full((3, H, W), 128, dtype=torch.uint8)
    for mask, colour in zip(masks, COLOURS, strict=True):
        image[:, mask] = torch.tensor(colour, dtype=torch.uint8)[:, None]
    boxes = torch.stack([_tight_box(m) for m in masks])
    return image, boxes, masks


def _expected_masks(geometry: Geometry) -> torch.Tensor:
    """The scene's shapes drawn analytically in the view of ``geometry``."""
    h, w = geometry.out_size
    sx, sy = geometry.scale_x, geometry.scale_y
    out = []
    for x1, y1, x2, y2 in RECTS:
        xa, xb = x1 * sx, x2 * sx
        if geometry.flip:
            xa, xb = w - xb, w - xa
        out.append(_rect_mask((xa, y1 * sy, xb, y2 * sy), h, w))
    cx, cy, r = DISK
    out.append(_ellipse_mask(w - cx * sx if geometry.flip else cx * sx, cy * sy, r * sx, r * sy, h, w))
    return torch.stack(out)


def _geometry_only(scale: tuple[float, float]) -> Augmentation:
    return Augmentation(ScaleFlip(scale))


@pytest.mark.parametrize(
    "augmentation",
    [weak_augmentation(), strong_augmentation(), _geometry_only((0.5, 1.5))],
    ids=["weak", "strong", "strong-geometry"],
)
def test_boxes_and_masks_stay_on_their_shapes(augmentation: Augmentation) -> None:
    image, boxes, masks = _scene()
    flips = set()
    for seed in range(12):
        view = augmentation(image, boxes=boxes, masks=masks, generator=torch.Generator().manual_seed(seed))
        geometry = view.geometry
        flips.add(geometry.flip)
        h, w = geometry.out_size
        assert view.image.shape == (3, h, w) and view.image.dtype == torch.float32
        assert float(view.image.min()) >= 0.0 and float(view.image.max()) <= 1.0
        assert view.keep.all()
        assert view.masks is not None and view.boxes is not None
        assert view.masks.shape == (5, h, w) and view.masks.dtype == torch.bool
        assert isinstance(view.boxes, tv_tensors.BoundingBoxes) and view.boxes.canvas_size == (h, w)
        for mask, box, expected in zip(view.masks, view.boxes, _expected_masks(geometry), strict=True):
            assert _iou(mask, expected) >= 0.9
            assert torch.allclose(box, _tight_box(mask), atol=1.0)
        if augmentation.photometric is None:
            # The image moved with the masks: a mask's pixels carry its shape's colour.
            for mask, colour in zip(view.masks, COLOURS, strict=True):
                inside = view.image[:, mask].median(dim=1).values
                assert torch.allclose(inside, torch.tensor(colour) / 255.0, atol=0.03)
    assert flips == {False, True}


def test_flip_maps_x_to_w_minus_x_exactly() -> None:
    image, boxes, masks = _scene()
    mapped = apply_geometry(Geometry((H, W), (H, W), flip=True), boxes=boxes, masks=masks)
    expected = torch.stack([W - boxes[:, 2], boxes[:, 1], W - boxes[:, 0], boxes[:, 3]], dim=1)
    assert mapped.boxes is not None and mapped.masks is not None
    assert torch.equal(mapped.boxes, expected)
    assert torch.equal(mapped.masks, masks.flip(-1))

    flip_only = Augmentation(ScaleFlip((1.0, 1.0), flip_p=1.0))
    view = flip_only(image, boxes=boxes, masks=masks, generator=torch.Generator().manual_seed(0))
    assert view.geometry == Geometry((H, W), (H, W), flip=True)
    assert torch.equal(view.image, image.flip(-1) / 255.0)
    assert view.boxes is not None and torch.equal(view.boxes.as_subclass(torch.Tensor), expected)


def _dilate(mask: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.max_pool2d(mask[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0


@pytest.mark.parametrize("mask_mode", ["nearest", "bilinear"])
def test_map_between_sends_weak_ground_truth_onto_strong_ground_truth(mask_mode: MaskMode) -> None:
    """Boxes map exactly. A mask is rasterised twice (original → weak → strong) against once, each
    rasterisation moving an edge by up to half a pixel: the two masks differ only in a 1-pixel band
    along the edges, so IoU ≥ 0.9 needs objects ≥ ~40 px; the small ones are held to the band."""
    image, boxes, masks = _scene()
    large = 0
    for seed in range(40):
        gen = torch.Generator().manual_seed(seed)
        weak, strong = weak_strong_views(image, boxes=boxes, masks=masks, generator=gen)
        mapped = map_between(
            weak.geometry, strong.geometry, boxes=weak.boxes, masks=weak.masks, mask_mode=mask_mode
        )
        assert mapped.keep.all() and mapped.boxes is not None and mapped.masks is not None
        assert strong.boxes is not None and strong.masks is not None
        assert mapped.masks.shape == strong.masks.shape and mapped.masks.dtype == torch.bool
        assert torch.allclose(mapped.boxes, strong.boxes.as_subclass(torch.Tensor), atol=1e-3)
        for ours, truth, box in zip(mapped.masks, strong.masks, strong.boxes, strict=True):
            assert torch.allclose(_tight_box(ours), _tight_box(truth), atol=1.0)
            assert not (ours & ~_dilate(truth)).any() and not (truth & ~_dilate(ours)).any()
            if min(box[2] - box[0], box[3] - box[1]) >= 40:
                assert _iou(ours, truth) >= 0.9
                large += 1
    assert large >= 40


def test_same_seed_same_views_and_the_global_rng_is_untouched() -> None:
    image, boxes, masks = _scene()
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    first = weak_strong_views(image, boxes=boxes, masks=masks, generator=torch.Generator().manual_seed(7))
    second = weak_strong_views(image, boxes=boxes, masks=masks, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state)
    for a, b in zip(first, second, strict=True):
        assert a.geometry == b.geometry
        assert torch.equal(a.image, b.image)
        assert a.boxes is not None and b.boxes is not None and torch.equal(a.boxes, b.boxes)
        assert a.masks is not None and b.masks is not None and torch.equal(a.masks, b.masks)
    others = [weak_strong_views(image, generator=torch.Generator().manual_seed(s))[1] for s in range(8, 12)]
    assert any(o.geometry != first[1].geometry for o in others)
    assert not any(
        o.image.shape == first[1].image.shape and torch.equal(o.image, first[1].image) for o in others
    )


def test_probabilities_do_not_shift_the_random_stream() -> None:
    """Every op draws its numbers whether or not it fires: switching the blur off changes nothing else."""
    image, _, _ = _scene()
    states = []
    for blur_p in (0.0, 1.0):
        gen = torch.Generator().manual_seed(11)
        Augmentation(ScaleFlip((0.5, 1.5)), Photometric(blur_p=blur_p))(image, generator=gen)
        states.append(gen.get_state())
    assert torch.equal(states[0], states[1])


def test_degenerate_boxes_are_dropped_with_a_keep_mask() -> None:
    boxes = torch.tensor(
        [
            [10.0, 10.0, 30.0, 30.0],  # fine
            [W + 5.0, 10.0, W + 20.0, 30.0],  # right of the image: clipped to zero width
            [20.0, 20.0, 20.0, 40.0],  # zero width
            [40.0, 40.0, 41.5, 60.0],  # 1.5 px wide: 0.75 px at half scale
            [-10.0, -5.0, 5.0, 10.0],  # partly outside: clipped, kept
        ]
    )
    half = Geometry((H, W), (H // 2, W // 2), flip=True)
    mapped = apply_geometry(half, boxes=boxes)
    assert mapped.keep.tolist() == [True, False, False, False, True]
    assert mapped.boxes is not None
    assert torch.equal(
        mapped.boxes, torch.tensor([[W / 2 - 15, 5, W / 2 - 5, 15], [W / 2 - 2.5, 0, W / 2, 5]])
    )

    # With masks, an instance whose mask vanishes is dropped too, and the masks follow the keep mask.
    masks = torch.zeros(2, H, W, dtype=torch.bool)
    masks[0, 10:30, 10:30] = True
    masks[1, 50, 50] = True  # one pixel, not sampled at half scale
    mapped = apply_geometry(half, boxes=torch.tensor([[10.0, 10, 30, 30], [50, 50, 51, 51]]), masks=masks)
    assert mapped.keep.tolist() == [True, False]
    assert mapped.masks is not None and mapped.masks.shape == (1, H // 2, W // 2)


def test_no_instances() -> None:
    image, _, _ = _scene()
    boxes, masks = torch.zeros(0, 4), torch.zeros(0, H, W, dtype=torch.bool)
    weak, strong = weak_strong_views(
        image, boxes=boxes, masks=masks, generator=torch.Generator().manual_seed(0)
    )
    for view in (weak, strong):
        h, w = view.geometry.out_size
        assert view.boxes is not None and view.boxes.shape == (0, 4)
        assert view.masks is not None and view.masks.shape == (0, h, w)
        assert view.keep.shape == (0,)
    mapped = map_between(weak.geometry, strong.geometry, boxes=weak.boxes, masks=weak.masks)
    assert mapped.boxes is not None and mapped.boxes.shape == (0, 4)
    assert mapped.masks is not None and mapped.masks.shape == (0, *strong.geometry.out_size)
    no_labels = weak_augmentation()(image, generator=torch.Generator().manual_seed(0))
    assert no_labels.boxes is None and no_labels.masks is None and no_labels.keep.shape == (0,)


def test_geometry_algebra_and_record() -> None:
    g = Geometry((H, W), (288, 384), flip=True)
    assert (g.scale_x, g.scale_y) == (1.5, 1.5)
    assert g.then(g.inverse()) == Geometry.identity((H, W))
    assert Geometry.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    corners = torch.tensor([[3.0, 4.0, 1.0], [100.0, 90.0, 1.0]], dtype=torch.float64)
    moved = corners @ g.matrix().T
    mapped = apply_geometry(g, boxes=torch.tensor([[3.0, 4.0, 100.0, 90.0]], dtype=torch.float64))
    assert mapped.boxes is not None
    assert mapped.boxes[0].tolist() == [moved[1, 0], moved[0, 1], moved[0, 0], moved[1, 1]]
    with pytest.raises(ValueError, match="cannot compose"):
        g.then(g)
    with pytest.raises(ValueError, match="different images"):
        map_between(g, Geometry((H + 1, W), (H, W)), boxes=torch.zeros(0, 4))
    with pytest.raises(ValueError, match="in_size"):
        Geometry.from_dict({"in_size": [0, 3], "out_size": [1, 1], "flip": False})


@given(
    sizes=st.lists(st.integers(8, 200), min_size=6, max_size=6),
    flips=st.tuples(st.booleans(), st.booleans()),
    box=st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
)
def test_map_between_equals_mapping_from_the_original(
    sizes: list[int], flips: tuple[bool, bool], box: tuple[float, float, float, float]
) -> None:
    h0, w0, h1, w1, h2, w2 = sizes
    weak, strong = Geometry((h0, w0), (h1, w1), flips[0]), Geometry((h0, w0), (h2, w2), flips[1])
    xs, ys = sorted((box[0] * w0, box[2] * w0)), sorted((box[1] * h0, box[3] * h0))
    original = torch.tensor([[xs[0], ys[0], xs[1], ys[1]]], dtype=torch.float64)
    direct = apply_geometry(strong, boxes=original, min_size=0.0)
    via_weak = apply_geometry(weak, boxes=original, min_size=0.0)
    mapped = map_between(weak, strong, boxes=via_weak.boxes, min_size=0.0)
    assert direct.boxes is not None and mapped.boxes is not None
    assert torch.allclose(mapped.boxes, direct.boxes, atol=1e-9)


def test_photometric_ops_touch_the_image_only() -> None:
    image, boxes, masks = _scene()
    geometric = ScaleFlip((0.5, 1.5))
    plain = Augmentation(geometric)(
        image, boxes=boxes, masks=masks, generator=torch.Generator().manual_seed(3)
    )
    strong = Augmentation(geometric, Photometric())(
        image, boxes=boxes, masks=masks, generator=torch.Generator().manual_seed(3)
    )
    assert strong.geometry == plain.geometry
    assert plain.boxes is not None and strong.boxes is not None and torch.equal(strong.boxes, plain.boxes)
    assert plain.masks is not None and strong.masks is not None and torch.equal(strong.masks, plain.masks)
    assert not torch.equal(strong.image, plain.image)


def test_cutout_erases_the_drawn_rectangles_only() -> None:
    img = torch.rand(3, 50, 80, generator=torch.Generator().manual_seed(0))
    before = img.clone()
    off = Photometric(color_jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, cutout_count=(0, 0))
    assert torch.equal(off(img, torch.Generator().manual_seed(0)), img)
    one = Photometric(
        color_jitter_p=0.0,
        grayscale_p=0.0,
        blur_p=0.0,
        cutout_count=(1, 1),
        cutout_side=(0.2, 0.2),
        cutout_fill=0.25,
    )
    out = one(img, torch.Generator().manual_seed(0))
    assert torch.equal(img, before)  # the input is not written into
    changed = (out != img).any(dim=0)
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert (int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1) == (10, 16)
    assert int(changed.sum()) == 10 * 16 and bool((out[:, changed] == 0.25).all())


def test_separable_blur_equals_torchvision() -> None:
    img = torch.rand(3, 20, 31, generator=torch.Generator().manual_seed(0))
    for k, sigma in [(3, 0.4), (13, 2.0), (7, 1.1)]:
        assert torch.allclose(
            gaussian_blur(img, k, sigma), TF.gaussian_blur(img, [k, k], [sigma, sigma]), atol=1e-5
        )
    # A 4-pixel-high image cannot take a 13-wide reflect padding: the kernel shrinks.
    tiny = strong_augmentation()(torch.rand(3, 4, 5), generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(tiny.image).all()


def test_image_types() -> None:
    image, _, _ = _scene()
    gen = torch.Generator
    a = weak_augmentation()(image, generator=gen().manual_seed(5)).image
    b = weak_augmentation()(image.double() / 255.0, generator=gen().manual_seed(5)).image
    assert a.dtype == b.dtype == torch.float32 and torch.allclose(a, b, atol=1e-6)
    assert torch.equal(to_float_image(image), image.float() / 255)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_float_image(image.float())
    # Resampling overshoots [0, 1] by rounding error: clamped, not refused (a teacher run
    # stopped at step 18 on 1.0000001 before this).
    overshoot = torch.tensor([-1e-7, 0.5, 1.0 + 1e-7]).reshape(3, 1, 1)
    assert to_float_image(overshoot).flatten().tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_float_image(overshoot * 1.01)
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        to_float_image(image[:1])
    with pytest.raises(ValueError, match="uint8"):
        to_float_image(image.to(torch.int32))


def test_view_sizes_follow_short_side_and_cap() -> None:
    image = torch.zeros(3, 480, 640, dtype=torch.uint8)
    aug = Augmentation(ScaleFlip((1.0, 1.0), short_side=240))
    assert aug(image, generator=torch.Generator().manual_seed(0)).image.shape == (3, 240, 320)
    capped = Augmentation(ScaleFlip((0.5, 1.5), short_side=480, max_long_side=700))
    for seed in range(10):
        h, w = capped(image, generator=torch.Generator().manual_seed(seed)).geometry.out_size
        assert max(h, w) <= 700 and abs(w / h - 4 / 3) < 0.01


def test_soft_masks_stay_soft_and_nearest_matches_torchvision() -> None:
    soft = torch.rand(2, H, W, generator=torch.Generator().manual_seed(0))
    g = Geometry((H, W), (70, 93), flip=False)
    mapped = apply_geometry(g, masks=soft, mask_mode="bilinear")
    assert mapped.masks is not None and mapped.masks.dtype == torch.float32
    assert float(mapped.masks.min()) >= 0.0 and float(mapped.masks.max()) <= 1.0
    binary = soft > 0.5
    ours = apply_geometry(g, masks=binary).masks
    theirs = TF.resize(
        tv_tensors.Mask(binary.to(torch.uint8)), [70, 93], interpolation=InterpolationMode.NEAREST_EXACT
    )
    assert ours is not None and torch.equal(ours, theirs.bool())


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="scale_range"):
        ScaleFlip((1.5, 0.5))
    with pytest.raises(ValueError, match="flip_p"):
        ScaleFlip(flip_p=2.0)
    with pytest.raises(ValueError, match="hue"):
        Photometric(hue=0.7)
    with pytest.raises(ValueError, match="cutout_side"):
        Photometric(cutout_side=(0.1, 1.5))
    with pytest.raises(ValueError, match="mask_mode"):
        apply_geometry(Geometry((H, W), (H, W)), masks=torch.zeros(1, H, W), mask_mode="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one mask per box"):
        apply_geometry(Geometry((H, W), (H, W)), boxes=torch.zeros(2, 4), masks=torch.zeros(1, H, W))
    xywh = tv_tensors.BoundingBoxes(torch.zeros(1, 4), format="XYWH", canvas_size=(H, W))
    with pytest.raises(ValueError, match="XYXY"):
        apply_geometry(Geometry((H, W), (H, W)), boxes=xywh)
    assert math.isclose(Geometry((H, W), (H, W)).scale_x, 1.0)


def test_strong_augmentation_takes_the_configured_photometric_ops() -> None:
    from tailteacher.config import StudentConfig

    # The config's defaults are the dataclass's (one set of peer defaults, not two).
    assert Photometric(**StudentConfig().strong_augmentation.model_dump()) == Photometric()
    kept = Photometric(hue=0.0, grayscale_p=0.0)
    assert strong_augmentation(photometric=kept).photometric is kept
    assert strong_augmentation().photometric == Photometric()
    # Every op off: the strong view is its geometric part alone, pixel for pixel.
    off = Photometric(
        brightness=0,
        contrast=0,
        saturation=0,
        hue=0,
        color_jitter_p=0,
        grayscale_p=0,
        blur_p=0,
        cutout_count=(0, 0),
    )
    image, boxes, masks = _scene()
    views = [
        Augmentation(ScaleFlip((0.5, 1.5)), p)(
            image, boxes=boxes, masks=masks, generator=torch.Generator().manual_seed(5)
        )
        for p in (None, off)
    ]
    assert views[0].geometry == views[1].geometry and torch.equal(views[0].image, views[1].image)
