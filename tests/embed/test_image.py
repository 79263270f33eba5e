"""The photo loader: hostile and broken bytes raise the specific error, odd-but-valid photos
come out as the upright RGB a viewer would show."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image as PILImage
from PIL import ImageFile, ImageOps

from matcher.embed.errors import (
    CorruptImage,
    EmptyImage,
    ImageTooLarge,
    NotAnImage,
    TruncatedImage,
    UnsupportedImage,
)
from matcher.embed.image import load_image, resize_for_detection
from tests.data import lfw_photos

pytestmark = pytest.mark.needs_data

MAX_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 4_000_000


def load(data: bytes, max_pixels: int = MAX_PIXELS) -> NDArray[np.uint8]:
    return load_image(data, max_bytes=MAX_BYTES, max_pixels=max_pixels)


def encode(image: PILImage.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def mean_abs_diff(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture(scope="module")
def face() -> PILImage.Image:
    """A real 250x250 LFW photo, decoded by PIL directly (the oracle)."""
    with PILImage.open(lfw_photos()[0].path) as image:
        return image.convert("RGB")


@pytest.fixture(scope="module")
def tall_face(face: PILImage.Image) -> PILImage.Image:
    """A non-square crop, so a wrong rotation shows up in the shape too."""
    return face.crop((40, 0, 200, 250))  # 160 wide, 250 tall


def png_with_header_size(width: int, height: int) -> bytes:
    """A 1x1 PNG whose IHDR claims width x height, with a valid CRC: a bomb in 70 bytes.

    Its pixel data is for 1x1 only, so if the loader decoded before checking the size it would
    fail as truncated/corrupt, not as too large.
    """
    data = bytearray(encode(PILImage.new("1", (1, 1)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# --- refused inputs ---------------------------------------------------------------------------


def test_zero_bytes_is_empty() -> None:
    with pytest.raises(EmptyImage):
        load(b"")


@pytest.mark.parametrize(
    "data",
    [
        b"Hello, this is a tip about a sighting near the station.\n" * 20,
        b"<!DOCTYPE html><html><head><title>photo.jpg</title></head><body>404</body></html>",
        np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        b"\xff\xd8",  # a JPEG start marker and nothing else
    ],
    ids=["text", "html", "random", "jpeg-magic-only"],
)
def test_non_images_are_refused(data: bytes) -> None:
    with pytest.raises(NotAnImage):
        load(data)


def test_oversized_bytes_are_refused_before_parsing() -> None:
    # Random bytes would be NotAnImage if parsed; ImageTooLarge shows the size check came first.
    data = np.random.default_rng(1).integers(0, 256, MAX_BYTES + 1, dtype=np.uint8).tobytes()
    with pytest.raises(ImageTooLarge, match=str(MAX_BYTES)):
        load(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_files_are_refused(face: PILImage.Image, fmt: str, keep: float) -> None:
    data = encode(face, fmt)
    assert load(data).shape == (250, 250, 3)  # the whole file is fine
    with pytest.raises(TruncatedImage):
        load(data[: int(len(data) * keep)])


def test_damage_inside_the_header(face: PILImage.Image) -> None:
    png = encode(face, "PNG")
    with pytest.raises(TruncatedImage):
        load(png[:20])  # signature and part of IHDR
    with pytest.raises(CorruptImage, match="PNG file's header is damaged or cut short"):
        load(png[:8] + bytes(32))  # a PNG signature, then no IHDR chunk
    with pytest.raises(TruncatedImage):
        load(encode(face, "JPEG")[:100])  # inside the JPEG markers


def test_decompression_bomb_png_is_refused_from_the_header() -> None:
    with pytest.raises(ImageTooLarge, match="900000000"):
        load(png_with_header_size(30_000, 30_000))


def test_own_pixel_limit_applies_without_pils(monkeypatch: pytest.MonkeyPatch) -> None:
    # With PIL's process-wide guard off, our per-call limit still stops the bomb unread.
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ImageTooLarge, match="30000x30000"):
        load(png_with_header_size(30_000, 30_000))


def test_long_thin_image_over_the_pixel_limit_is_refused() -> None:
    data = encode(PILImage.new("L", (60_000, 1), 128), "PNG")
    with pytest.raises(ImageTooLarge, match="60000x1"):
        load(data, max_pixels=50_000)
    assert load(data, max_pixels=60_000).shape == (1, 60_000, 3)  # the limit is inclusive


def test_heic_is_named_as_unsupported() -> None:
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    with pytest.raises(UnsupportedImage, match="HEIC"):
        load(heic)


def test_formats_off_the_list_are_not_parsed(face: PILImage.Image) -> None:
    # PIL reads PPM, but the loader never lets that plugin see public bytes.
    with pytest.raises(NotAnImage):
        load(encode(face, "PPM"))


def test_truncated_loading_switch_is_refused(
    monkeypatch: pytest.MonkeyPatch, face: PILImage.Image
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        load(encode(face, "PNG"))


# --- valid but odd inputs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("PNG", {}), ("BMP", {}), ("TIFF", {}), ("WEBP", {"lossless": True})],
)
def test_lossless_formats_round_trip_exactly(
    face: PILImage.Image, fmt: str, options: dict[str, object]
) -> None:
    result = load(encode(face, fmt, **options))
    assert result.dtype == np.uint8 and result.flags.writeable
    np.testing.assert_array_equal(result, np.asarray(face))


def test_cmyk_jpeg_matches_the_rgb_photo(face: PILImage.Image) -> None:
    data = encode(face.convert("CMYK"), "JPEG", quality=95)
    with PILImage.open(io.BytesIO(data)) as stored:
        # Pillow writes Adobe-style inverted CMYK, so this exercises the inverted path.
        assert stored.mode == "CMYK" and "adobe" in stored.info
    result = load(data)
    assert result.shape == (250, 250, 3)
    assert mean_abs_diff(result, np.asarray(face)) < 2.0


def test_16_bit_png_is_scaled_not_clipped() -> None:
    samples = np.arange(0, 65536, 64, dtype=np.uint16).reshape(8, 128)
    samples[-1, -1] = 65535
    data = encode(PILImage.fromarray(samples), "PNG")
    with PILImage.open(io.BytesIO(data)) as stored:
        assert stored.mode == "I;16"
    result = load(data)
    expected = np.rint(samples.astype(np.float64) * 255 / 65535).astype(np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(result[:, :, channel], expected)
    assert result.min() == 0 and result.max() == 255


def test_16_bit_big_endian_tiff() -> None:
    samples = np.array([[0, 257, 32896], [65535, 12850, 514]], dtype=np.uint16)
    image = PILImage.frombytes("I;16B", (3, 2), samples.astype(">u2").tobytes())
    result = load(encode(image, "TIFF"))
    np.testing.assert_array_equal(result[:, :, 1], samples // 257)


def test_32_bit_integer_tiff_is_stretched_over_its_range() -> None:
    samples = np.array([[-1_000_000, 0], [500_000, 2_000_000]], dtype=np.int32)
    result = load(encode(PILImage.fromarray(samples), "TIFF"))
    expected = np.rint((samples + 1_000_000) * 255 / 3_000_000).astype(np.uint8)
    np.testing.assert_array_equal(result[:, :, 0], expected)


@pytest.mark.parametrize("mode", ["L", "1"])
def test_grey_and_bilevel_become_equal_channels(face: PILImage.Image, mode: str) -> None:
    grey = face.convert(mode)
    result = load(encode(grey, "PNG"))
    expected = np.asarray(grey.convert("L"))
    for channel in range(3):
        np.testing.assert_array_equal(result[:, :, channel], expected)


def test_rgba_is_composited_on_white() -> None:
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[:, :, :3] = (200, 40, 10)
    rgba[:, :, 3] = [[0, 255, 128], [0, 255, 128]]
    result = load(encode(PILImage.fromarray(rgba, "RGBA"), "PNG"))
    np.testing.assert_array_equal(result[0, 0], (255, 255, 255))  # fully transparent
    np.testing.assert_array_equal(result[0, 1], (200, 40, 10))  # opaque
    expected_half = np.rint((np.array([200, 40, 10]) * 128 + 255 * 127) / 255)
    np.testing.assert_array_equal(result[0, 2], expected_half)


def test_grey_with_alpha_is_composited_on_white() -> None:
    image = PILImage.merge("LA", [PILImage.new("L", (4, 4), 0), PILImage.new("L", (4, 4), 0)])
    np.testing.assert_array_equal(load(encode(image, "PNG")), np.full((4, 4, 3), 255))


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_becomes_white(fmt: str) -> None:
    image = PILImage.new("P", (4, 2), 0)
    image.putpalette([0, 0, 0, 220, 20, 60] + [0] * 762)
    image.paste(1, (2, 0, 4, 2))  # right half: palette colour 1
    data = encode(image, fmt, transparency=0)
    result = load(data)
    np.testing.assert_array_equal(result[:, :2], np.full((2, 2, 3), 255))
    np.testing.assert_array_equal(result[:, 2:], np.broadcast_to((220, 20, 60), (2, 2, 3)))


def test_animated_gif_gives_its_first_frame() -> None:
    red, blue = (PILImage.new("RGB", (8, 6), colour) for colour in ((255, 0, 0), (0, 0, 255)))
    data = encode(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)
    with PILImage.open(io.BytesIO(data)) as stored:
        assert stored.n_frames == 2
    np.testing.assert_array_equal(load(data), np.broadcast_to((255, 0, 0), (6, 8, 3)))


def test_mpo_gives_its_first_picture(face: PILImage.Image) -> None:
    second = ImageOps.invert(face)
    data = encode(face, "MPO", save_all=True, append_images=[second], quality=95)
    assert mean_abs_diff(load(data), np.asarray(face)) < 2.0


# How each EXIF orientation was stored, as numpy operations on the upright picture (the
# inverse of what a viewer applies), so the expectation does not come from the code under test.
STORED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, 1),  # viewer turns it 90 degrees clockwise
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, -1),  # viewer turns it 90 degrees anticlockwise
}


def with_orientation(upright: PILImage.Image, orientation: int, fmt: str) -> bytes:
    stored = PILImage.fromarray(np.ascontiguousarray(STORED[orientation](np.asarray(upright))))
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    stored.info["exif"] = exif.tobytes()
    # Cross-check the stored pixels with PIL's own reading of the tag, before any encoding.
    np.testing.assert_array_equal(np.asarray(ImageOps.exif_transpose(stored)), upright)
    return encode(stored, fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tall_face: PILImage.Image, orientation: int) -> None:
    result = load(with_orientation(tall_face, orientation, "JPEG"))
    assert result.shape == (250, 160, 3)
    assert mean_abs_diff(result, np.asarray(tall_face)) < 2.0


def test_exif_orientation_in_png(tall_face: PILImage.Image) -> None:
    result = load(with_orientation(tall_face, 6, "PNG"))
    np.testing.assert_array_equal(result, np.asarray(tall_face))


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_unreadable_exif_is_ignored(face: PILImage.Image) -> None:
    data = encode(face, "JPEG", quality=95, exif=b"Exif\x00\x00MM\x00*\x00\x00\xff\xff\xff")
    assert mean_abs_diff(load(data), np.asarray(face)) < 2.0


# --- resize_for_detection ---------------------------------------------------------------------


def test_small_images_are_returned_as_is(face: PILImage.Image) -> None:
    image = np.asarray(face)
    resized, factor = resize_for_detection(image, 250)
    assert resized is image and factor == 1.0


def test_downscale_averages_areas_and_maps_back(face: PILImage.Image) -> None:
    image = np.asarray(face)
    resized, factor = resize_for_detection(image, 125)
    assert resized.shape == (125, 125, 3) and factor == 2.0
    block_means = image.reshape(125, 2, 125, 2, 3).mean(axis=(1, 3))
    assert np.abs(resized - block_means).max() <= 1.0


def test_downscale_keeps_the_aspect_ratio(tall_face: PILImage.Image) -> None:
    resized, factor = resize_for_detection(np.asarray(tall_face), 100)
    assert resized.shape == (100, 64, 3) and resized.dtype == np.uint8
    assert factor == pytest.approx(2.5)
