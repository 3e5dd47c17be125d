"""Tests for `lavis_ib.common.media`: every image mode to correct RGB values, EXIF orientation, and failures."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lavis_ib.common.media import MediaError, decode_video_frames, open_image, to_rgb, uniform_indices


def _pixel(image: Image.Image, xy: tuple[int, int] = (0, 0)) -> tuple[int, int, int]:
    """The RGB pixel at `xy` of an image that must already be RGB."""
    assert image.mode == "RGB"
    return image.getpixel(xy)


def _saved(image: Image.Image, path: Path, **save_args) -> Path:
    """Save `image` to `path` and return the path."""
    image.save(path, **save_args)
    return path


def _palette_image(transparent_index: int | None) -> Image.Image:
    """A 4x4 palette image using entries 0 (red) and 1 (green), optionally with a transparent entry."""
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)
    image.putpixel((1, 1), 1)
    if transparent_index is not None:
        image.info["transparency"] = transparent_index
    return image


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("L", (3, 2), 77), (77, 77, 77)),
        (Image.new("LA", (3, 2), (77, 0)), (77, 77, 77)),
        (Image.new("RGBA", (3, 2), (10, 20, 30, 0)), (10, 20, 30)),
        (Image.new("CMYK", (3, 2), (0, 255, 255, 0)), (255, 0, 0)),
        (Image.new("1", (3, 2), 1), (255, 255, 255)),
        (Image.fromarray(np.full((2, 3), 32768, np.uint16)), (128, 128, 128)),
        (Image.fromarray(np.full((2, 3), 65535, np.uint16)), (255, 255, 255)),
        (Image.fromarray(np.full((2, 3), 1000, np.int32)), (4, 4, 4)),
        (Image.fromarray(np.full((2, 3), 0.5, np.float32)), (128, 128, 128)),
        (Image.fromarray(np.full((2, 3), 200.0, np.float32)), (200, 200, 200)),
    ],
    ids=["L", "LA", "RGBA", "CMYK", "1", "I;16-mid", "I;16-max", "I", "F-unit", "F-byte"],
)
def test_to_rgb_maps_every_mode_to_expected_values(image: Image.Image, expected: tuple[int, int, int]) -> None:
    """Each mode becomes RGB with the right value; alpha is dropped (LAVIS parity), high depths are scaled."""
    assert _pixel(to_rgb(image)) == expected


def test_to_rgb_16_bit_scales_instead_of_clipping() -> None:
    """A 16-bit ramp keeps its ordering and spans 0..255 (clipping would saturate everything above 255)."""
    ramp = np.linspace(0, 65535, 256).astype(np.uint16).reshape(16, 16)
    values = np.asarray(to_rgb(Image.fromarray(ramp)))[..., 0].ravel()
    assert values[0] == 0 and values[-1] == 255
    assert np.all(np.diff(values.astype(int)) >= 0)
    assert np.abs(values.astype(int) - np.arange(256)).max() <= 1


@pytest.mark.parametrize(
    ("values", "dtype", "expected"),
    [
        ([-100, 0, 155], np.int32, [0, 100, 255]),
        ([70000, 70100, 70255], np.int32, [0, 100, 255]),
        ([-1.0, 0.0, 1.0], np.float32, [0, 128, 255]),
    ],
)
def test_to_rgb_out_of_range_values_are_stretched(values: list[float], dtype: type, expected: list[int]) -> None:
    """32-bit integer or float data outside the recognised ranges is min-max stretched to 0..255."""
    image = Image.fromarray(np.array([values], dtype))
    assert np.asarray(to_rgb(image))[0, :, 0].tolist() == expected


def test_to_rgb_returns_rgb_input_unchanged() -> None:
    """An RGB image is returned as is (no copy)."""
    image = Image.new("RGB", (2, 2), (1, 2, 3))
    assert to_rgb(image) is image


@pytest.mark.parametrize("transparent_index", [None, 0])
def test_open_image_palette_with_and_without_transparency(tmp_path: Path, transparent_index: int | None) -> None:
    """Palette PNGs (with a transparent entry or not) open as their palette colours."""
    path = _saved(_palette_image(transparent_index), tmp_path / "palette.png")
    image = open_image(path)
    assert _pixel(image, (0, 0)) == (255, 0, 0)
    assert _pixel(image, (1, 1)) == (0, 255, 0)


def test_open_image_16_bit_png_mid_grey_maps_to_128(tmp_path: Path) -> None:
    """A 16-bit PNG of value 32768 opens as RGB (128, 128, 128)."""
    path = _saved(Image.fromarray(np.full((5, 7), 32768, np.uint16)), tmp_path / "grey16.png")
    image = open_image(path)
    assert image.size == (7, 5)
    assert _pixel(image) == (128, 128, 128)


def test_open_image_cmyk_jpeg(tmp_path: Path) -> None:
    """A CMYK JPEG opens as RGB with approximately the right colour."""
    path = _saved(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    red, green, blue = _pixel(open_image(path))
    assert red > 240 and green < 15 and blue < 15


def test_open_image_applies_exif_orientation(tmp_path: Path) -> None:
    """Orientation 6 (rotate 90° clockwise to display): a 40x20 image becomes 20x40, top-left moves top-right."""
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 10, 10))
    exif = image.getexif()
    exif[0x0112] = 6
    path = _saved(image, tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    opened = open_image(path)
    assert opened.size == (20, 40)
    red, _, blue = _pixel(opened, (15, 4))
    assert red > 200 and blue < 60
    red, _, blue = _pixel(opened, (4, 4))
    assert blue > 200 and red < 60


def test_open_image_accepts_file_objects_and_str_paths(tmp_path: Path) -> None:
    """Paths as str, Path or an open binary file all work."""
    path = _saved(Image.new("L", (2, 2), 9), tmp_path / "small.png")
    with open(path, "rb") as handle:
        from_file = open_image(handle)
    assert _pixel(from_file) == _pixel(open_image(str(path))) == _pixel(open_image(io.BytesIO(path.read_bytes())))


def test_open_image_missing_file_names_the_path(tmp_path: Path) -> None:
    """A missing file raises MediaError (an OSError) whose message contains the path and the reason."""
    path = tmp_path / "nope.jpg"
    with pytest.raises(MediaError) as caught:
        open_image(path)
    assert isinstance(caught.value, OSError)
    assert str(path) in str(caught.value) and "not found" in str(caught.value)
    assert caught.value.path == str(path)


def test_open_image_corrupt_file_names_the_path(tmp_path: Path) -> None:
    """Random bytes named .jpg raise MediaError naming the file."""
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match="corrupt.jpg"):
        open_image(path)


def test_open_image_truncated_file_names_the_path(tmp_path: Path) -> None:
    """A PNG cut in half fails on decoding (not lazily later) with MediaError naming the file."""
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    full = _saved(Image.fromarray(noise), tmp_path / "full.png")
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[: os.path.getsize(full) // 2])
    with pytest.raises(MediaError, match="cut.png"):
        open_image(cut)


def test_media_error_survives_pickling() -> None:
    """MediaError can cross a DataLoader worker boundary (rebuilt from its message)."""
    error = pickle.loads(pickle.dumps(MediaError("cannot open image x.jpg: broken", path="x.jpg")))
    assert isinstance(error, MediaError) and str(error) == "cannot open image x.jpg: broken"


@pytest.mark.parametrize(
    ("length", "n", "expected"),
    [(12, 4, [1, 4, 7, 10]), (12, 1, [6]), (5, 3, [0, 2, 4]), (2, 5, [0, 0, 1, 1, 1]), (12, 12, list(range(12)))],
)
def test_uniform_indices_are_evenly_spaced_centres(length: int, n: int, expected: list[int]) -> None:
    """Indices sit at the centres of n equal segments; n > length repeats frames."""
    assert uniform_indices(length, n) == expected


def test_decode_video_missing_and_corrupt_files_name_the_path(tmp_path: Path) -> None:
    """Video decoding errors are MediaErrors naming the file."""
    missing = tmp_path / "missing.mp4"
    with pytest.raises(MediaError, match="missing.mp4"):
        decode_video_frames(missing, 4)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(MediaError, match="corrupt.mp4"):
        decode_video_frames(corrupt, 4)


DEMO_IMAGE = Path(__file__).resolve().parents[2] / "lavis_ib" / "assets" / "images" / "demo.png"


@pytest.mark.parametrize(
    ("xy", "colour"),
    [((48, 48), (210, 30, 35)), ((48, 160), (40, 160, 60)), ((128, 148), (40, 70, 200)), ((230, 62), (210, 30, 35))],
    ids=["red-circle", "green-triangle", "blue-square", "stop-sign"],
)
def test_demo_image_shows_the_described_scene(xy: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """The bundled demo image is small, 256x192, and has the objects its generator's docstring describes."""
    assert DEMO_IMAGE.stat().st_size < 50_000
    image = open_image(DEMO_IMAGE)
    assert image.size == (256, 192)
    assert _pixel(image, xy) == colour
