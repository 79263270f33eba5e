"""Photo bytes -> upright RGB array, and the downscaled copy a detector sees.

Photos come from the public through tip apps, so this is a security boundary: every check that
can be made from the size of the bytes or the image header happens before a pixel is decoded,
only a short list of formats is parsed at all, and every failure becomes a specific `ImageError`.
"""

from __future__ import annotations

import io
import logging
import struct

import numpy as np
from numpy.typing import NDArray
from PIL import ExifTags, ImageFile, UnidentifiedImageError
from PIL import Image as PILImage

from matcher.embed.errors import (
    CorruptImage,
    EmptyImage,
    ImageError,
    ImageTooLarge,
    NotAnImage,
    TruncatedImage,
    UnsupportedImage,
)
from matcher.embed.types import Image

log = logging.getLogger(__name__)

# The only plugins PIL may run on untrusted bytes. The JPEG plugin also opens MPO (the
# multi-picture JPEGs some phones write); we take its first picture like any other JPEG.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
_ACCEPTED = frozenset({*ALLOWED_FORMATS, "MPO"})

# What PIL's parsers raise on damaged data (struct/Index errors come from header parsing).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError)

# Real image formats people send that we do not parse: named so the sender can be told what to
# send instead, rather than hearing that their photo is "not an image".
_ISO_BRANDS = {
    b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"hevx": "HEIC", b"heim": "HEIC",
    b"heis": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF",
}  # fmt: skip
_MAGIC = (
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"8BPS", "Photoshop"),
)
# Starts of the allowed formats: bytes that begin like one but do not open have a broken header.
_ALLOWED_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})

# EXIF orientation -> how to turn the stored pixels upright (PIL.ImageOps.exif_transpose's
# mapping). Done by PIL before the pixels leave it: its transposition is ~3x faster than numpy's
# rot90 + copy of an (H, W, 3) array (70 vs 200 ms for a 12 MP photo on 2 cores).
_UPRIGHT: dict[int, PILImage.Transpose] = {
    2: PILImage.Transpose.FLIP_LEFT_RIGHT,
    3: PILImage.Transpose.ROTATE_180,
    4: PILImage.Transpose.FLIP_TOP_BOTTOM,
    5: PILImage.Transpose.TRANSPOSE,
    6: PILImage.Transpose.ROTATE_270,
    7: PILImage.Transpose.TRANSVERSE,
    8: PILImage.Transpose.ROTATE_90,
}


def load_image(data: bytes, *, max_bytes: int, max_pixels: int) -> Image:
    """Decode photo bytes into an upright (H, W, 3) uint8 RGB array.

    Transparent pixels are composited on white (the colour viewers and tip apps show behind
    them), 16-bit samples are scaled to 8 bits, CMYK is converted (PIL undoes Adobe's inverted
    CMYK), and only the first frame of an animation or multi-page file is used.
    """
    if not data:
        raise EmptyImage("no image bytes were received")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the image is {len(data)} bytes, the limit is {max_bytes}")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Truncated photos would decode with grey bands and still be matched; refuse loudly
        # rather than quietly flip a process-wide PIL switch back.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on; matcher refuses to run so")
    with _open(data, max_pixels) as im:
        _decode(im)
        orientation = _orientation(im)
        log.debug("decoded %s %s %dx%d orientation %d", im.format, im.mode, *im.size, orientation)
        upright = _upright(im, orientation)
        try:
            return _to_rgb(upright)
        finally:
            if upright is not im:
                upright.close()


def declared_pixels(data: bytes) -> int:
    """Width x height from the image header, without decoding a pixel: what `load_image` will
    allocate for. 0 when the header does not open (then `load_image` says why)."""
    try:
        with PILImage.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as im:
            width, height = im.size
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning, *_DECODE_ERRORS):
        return 0
    return int(width) * int(height)


def resize_for_detection(image: Image, max_side: int) -> tuple[Image, float]:
    """The image with its longest side at most `max_side`, and the factor back to source px.

    Multiply coordinates found in the returned image by the factor (`Detection.scaled`) to get
    source-image coordinates. An image already small enough comes back as the same array with
    factor 1.0. Downscaling averages areas (PIL's BOX filter), so thin detail does not alias.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    height, width = image.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return image, 1.0
    ratio = max_side / longest
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    small = PILImage.fromarray(image).resize(size, PILImage.Resampling.BOX)
    return np.array(small, dtype=np.uint8), longest / max_side


def _open(data: bytes, max_pixels: int) -> ImageFile.ImageFile:
    """Parse the header only, and refuse anything too big before its pixels are allocated."""
    try:
        im = PILImage.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as err:
        # PIL's own process-wide limit; ours in _check_header is normally the stricter one. We do
        # not install a filter to make its warning an error: warning filters are process-wide and
        # not thread-safe, and our own check is the guard. The Warning lands here only where the
        # process already escalates warnings (e.g. pytest -W error).
        raise ImageTooLarge(f"the image header declares too many pixels: {err}") from err
    except UnidentifiedImageError as err:
        raise _unidentified(data[:16]) from err
    except _DECODE_ERRORS as err:
        raise _decode_error(err) from err
    try:
        _check_header(im, max_pixels)
    except ImageError:
        im.close()
        raise
    return im


def _check_header(im: ImageFile.ImageFile, max_pixels: int) -> None:
    if im.format not in _ACCEPTED:
        raise UnsupportedImage(f"{im.format} images are not supported")
    width, height = im.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height} pixels, the limit is {max_pixels}"
        )
    if width < 1 or height < 1:
        raise UnsupportedImage(f"the image is {width}x{height} pixels")


def _decode(im: ImageFile.ImageFile) -> None:
    """Decode every pixel of the first frame now, so damage is found here and not later."""
    try:
        im.load()
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as err:
        raise ImageTooLarge(f"the image declares too many pixels: {err}") from err
    except _DECODE_ERRORS as err:
        raise _decode_error(err) from err


def _decode_error(err: Exception) -> ImageError:
    # PIL reports a short file as OSError("image file is truncated ...") or EOFError.
    if isinstance(err, EOFError) or "truncated" in str(err).lower():
        return TruncatedImage(f"the image data ends early ({err})")
    return CorruptImage(f"the image data is damaged ({err})")


def _unidentified(head: bytes) -> ImageError:
    """Why no allowed plugin would open these bytes, as specifically as the first bytes tell.

    Formats PIL could read but we do not allow (PPM, ICO...) come out as NotAnImage: naming
    them would mean running their parsers on public bytes.
    """
    name = _ISO_BRANDS.get(head[8:12]) if head[4:8] == b"ftyp" else _magic_name(head, _MAGIC)
    if name is not None:
        return UnsupportedImage(f"{name} images are not supported; send JPEG, PNG or WebP")
    name = "WebP" if head[:4] == b"RIFF" and head[8:12] == b"WEBP" else None
    name = name or _magic_name(head, _ALLOWED_MAGIC)
    if name is not None:
        return CorruptImage(f"this {name} file's header is damaged or cut short")
    return NotAnImage("the bytes are not a JPEG, PNG, WebP, GIF, BMP or TIFF image")


def _magic_name(head: bytes, table: tuple[tuple[bytes, str], ...]) -> str | None:
    return next((name for magic, name in table if head.startswith(magic)), None)


def _orientation(im: ImageFile.ImageFile) -> int:
    """The EXIF orientation (1-8), or 1 when absent or unreadable.

    Read after decoding because PNG may carry its eXIf chunk after the pixels. Broken metadata
    should not cost us an otherwise good photo, so it is logged and ignored.
    """
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except _DECODE_ERRORS as err:
        log.warning("ignoring unreadable EXIF in a %s image (%s)", im.format, err)
        return 1
    return value if isinstance(value, int) and value in _UPRIGHT else 1


def _upright(im: PILImage.Image, orientation: int) -> PILImage.Image:
    """The decoded image turned upright: `im` itself when it is, else a new image."""
    turn = _UPRIGHT.get(orientation)
    if turn is None:
        return im
    try:
        return im.transpose(turn)
    except ValueError as err:
        raise UnsupportedImage(f"cannot turn a {im.mode} image upright") from err


def _to_rgb(im: PILImage.Image) -> Image:
    mode = im.mode
    if mode.startswith("I"):  # I, I;16, I;16B, I;16L, I;16S...
        grey = _int_grey_to_uint8(np.asarray(im))
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        # Float samples have no agreed range (0-1? 0-255? physical units?), so we do not guess.
        raise UnsupportedImage("32-bit floating-point images are not supported")
    try:
        if mode in _ALPHA_MODES or "transparency" in im.info:
            return _composite_on_white(np.array(im.convert("RGBA"), dtype=np.uint8))
        # Most photos (JPEG) decode to RGB already: converting would only copy all the pixels.
        return np.array(im if mode == "RGB" else im.convert("RGB"), dtype=np.uint8)
    except ValueError as err:
        raise UnsupportedImage(f"cannot convert a {mode} image to RGB") from err


def _int_grey_to_uint8(values: NDArray[np.integer]) -> NDArray[np.uint8]:
    """Scale integer grey samples to 0-255 without clipping (PIL's convert('L') clips at 255).

    Samples within 0..65535 are 16-bit data (PIL's container for 16-bit PNG/TIFF) and map by
    round(v * 255 / 65535); anything else (32-bit or signed TIFFs) is stretched over its range.
    """
    low, high = int(values.min()), int(values.max())
    if low >= 0 and high <= 0xFFFF:
        wide = values.astype(np.uint32)
        return ((wide * 255 + 0xFFFF // 2) // 0xFFFF).astype(np.uint8)
    span = np.float32(max(high - low, 1))
    stretched = (values.astype(np.float32) - np.float32(low)) * (np.float32(255) / span)
    return np.rint(stretched).astype(np.uint8)


def _composite_on_white(rgba: NDArray[np.uint8]) -> Image:
    """Blend RGBA over white; rounding integer maths stays within uint16."""
    rgb = rgba[:, :, :3].astype(np.uint16)
    alpha = rgba[:, :, 3:].astype(np.uint16)
    blended = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return blended.astype(np.uint8)
