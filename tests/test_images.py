"""Every image mode Pillow opens decodes to the 8-bit RGB a person sees, EXIF orientation applied."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lvis_factory import mutated, tiny_lvis, write
from tailteacher.data.dataset import LvisDataset, Sample
from tailteacher.data.images import read_rgb
from tailteacher.data.lvis_json import check_image_files, load_lvis

GREY = (np.arange(12 * 10).reshape(10, 12) * 2).astype(np.uint8)  # [H=10, W=12], values 0..238


def _grey_rgb() -> np.ndarray:
    return np.repeat(GREY[:, :, None], 3, axis=2)


def test_16_bit_grey_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "g16.png"
    Image.fromarray(GREY.astype(np.uint16) * 257).save(path)  # 8-bit × 257, as 16-bit scanners write
    assert Image.open(path).mode == "I;16"
    np.testing.assert_array_equal(read_rgb(path), _grey_rgb())


def test_16_bit_tiff_opened_as_mode_i(tmp_path: Path) -> None:
    path = tmp_path / "g32.tif"
    Image.fromarray(GREY.astype(np.int32) * 257, mode="I").save(path)
    assert Image.open(path).mode == "I"
    np.testing.assert_array_equal(read_rgb(path), _grey_rgb())


def test_palette_grey_alpha_and_cmyk(tmp_path: Path) -> None:
    palette = Image.new("P", (3, 2))
    palette.putpalette([255, 0, 0, 0, 128, 255] + [0] * 762)
    palette.putdata([0, 1, 0, 1, 1, 0])
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(
        read_rgb(tmp_path / "p.png"),
        np.array([[[255, 0, 0], [0, 128, 255], [255, 0, 0]], [[0, 128, 255], [0, 128, 255], [255, 0, 0]]]),
    )
    Image.fromarray(np.stack([GREY, np.full_like(GREY, 7)], axis=2), mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "la.png"), _grey_rgb())  # alpha dropped
    cmyk = np.zeros((1, 2, 4), dtype=np.uint8)
    cmyk[0, 0] = (255, 0, 0, 0)  # full cyan: no red
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "c.tif")
    np.testing.assert_array_equal(read_rgb(tmp_path / "c.tif"), [[[0, 255, 255], [255, 255, 255]]])
    Image.new("1", (2, 1), 1).save(tmp_path / "one.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "one.png"), [[[255, 255, 255], [255, 255, 255]]])


def test_float_images_are_refused_with_their_mode(tmp_path: Path) -> None:
    Image.fromarray(GREY.astype(np.float32), mode="F").save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match="mode F"):
        read_rgb(tmp_path / "f.tif")


def _exif_rotated(path: Path, stored: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(stored).save(path, exif=exif)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = np.zeros((4, 6, 3), dtype=np.uint8)  # stored 6 wide, 4 high
    stored[0, 0] = (255, 0, 0)
    _exif_rotated(tmp_path / "o.png", stored)
    shown = read_rgb(tmp_path / "o.png")
    np.testing.assert_array_equal(shown, np.rot90(stored, k=-1))  # 4 wide, 6 high, red top-right
    assert shown.shape == (6, 4, 3) and tuple(shown[0, 3]) == (255, 0, 0)


def test_a_record_with_the_upright_size_loads(tmp_path: Path) -> None:
    """A JPEG stored 80×64 with orientation 6, recorded as 64×80 (what labelling tools write)."""

    def upright(d):
        d["images"] = d["images"][:1]
        d["annotations"] = [a for a in d["annotations"] if a["image_id"] == 1]
        d["images"][0].update(width=64, height=80, file_name="img/rotated.jpg")

    path = write(tmp_path, mutated(tiny_lvis(), upright), with_images=False)
    (tmp_path / "images" / "img").mkdir(parents=True)
    _exif_rotated(tmp_path / "images/img/rotated.jpg", np.full((64, 80, 3), 90, dtype=np.uint8))
    data = load_lvis(path, tmp_path / "images")
    assert check_image_files(data) == []
    sample = LvisDataset(data)[0]
    assert isinstance(sample, Sample) and tuple(sample.image.shape) == (3, 80, 64)
