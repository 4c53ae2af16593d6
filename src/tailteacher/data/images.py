"""Image files to 8-bit RGB pixels, the way a labelling tool's user sees them.

One reader for every stage that opens an image (training, prototypes, prediction, the file check),
so that a file decodes the same everywhere:

* the EXIF orientation tag is applied (a phone's JPEG stored 80×64 with "rotate 90" is a 64×80
  image, and labelling tools record it so), as torchvision's ``decode_image(apply_exif_orientation=
  True)`` and detectron2's ``read_image`` do;
* 16-bit greyscale (``I;16*``, and ``I``, which Pillow uses for 16-bit TIFFs) is scaled by
  255/65535 to 8 bits — Pillow's own ``convert("RGB")`` clips it, turning most images white;
* palette, grey + alpha, CMYK, 1-bit and other modes Pillow converts go through ``convert("RGB")``
  (alpha is dropped, not composited);
* float images (``F``) and modes Pillow cannot convert are refused with a ``ValueError`` naming
  the mode: they have no agreed 8-bit reading.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image as PILImage

#: Pillow's modes that hold 16-bit samples (``I`` is 32-bit signed; Pillow opens 16-bit TIFFs so).
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
#: EXIF orientations (tag 0x0112) that swap width and height: transpose, rotations by 90°.
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_ORIENTATION_TAG = 0x0112


def to_rgb8(image: PILImage.Image) -> np.ndarray:
    """``image`` as ``[H, W, 3]`` uint8 RGB; 16-bit grey scaled by 255/65535 (rounded).

    Raises:
        ValueError: a float (``F``) image or a mode Pillow cannot convert to RGB.
    """
    if image.mode in SIXTEEN_BIT_MODES:
        wide = np.asarray(image, dtype=np.float64)
        grey = np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode == "F":
        raise ValueError("image mode F (32-bit float) has no 8-bit reading; save it as 8- or 16-bit")
    try:
        return np.asarray(image.convert("RGB"))
    except ValueError as err:
        raise ValueError(f"image mode {image.mode} cannot be converted to RGB ({err})") from None


def read_rgb(path: str | Path) -> np.ndarray:
    """The file's pixels as ``[H, W, 3]`` uint8 RGB, EXIF orientation applied.

    Raises:
        OSError: missing, unreadable or truncated file (Pillow's errors).
        ValueError: a mode with no 8-bit RGB reading (see ``to_rgb8``).
    """
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        upright = ImageOps.exif_transpose(im)
        pixels: np.ndarray = to_rgb8(upright).copy()
        return pixels


def upright_size(image: PILImage.Image) -> tuple[int, int]:
    """``(width, height)`` of an opened image once its EXIF orientation is applied, without decoding."""
    width, height = image.size
    orientation = image.getexif().get(_ORIENTATION_TAG)
    return (height, width) if orientation in _SWAPPING_ORIENTATIONS else (width, height)
