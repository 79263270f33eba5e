"""Sighting photos like a phone's, for the service benchmark: 12 MP (4032x3024) JPEGs
(quality 92, 4:2:0, EXIF with camera model and GPS) with a real LFW-dev face of a case's person,
upscaled 3x, on a face-free textured scene with sensor grain (about 3.4 MB).

No two uploads may decode to the same pixels (a cache would flatter the figures), and the
client must not spend its CPU re-encoding: each photo is encoded twice (plain, and with a mark
in every 16-px row) with a restart marker after every row, and upload n takes row r from the
marked encoding when bit r of n is set.
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

FULL_SIZE = (4032, 3024)
FACE_SCALE = 3  # LFW photos are 250 px: the face comes out about 330 px wide
JPEG_QUALITY = 92
MCU = 16  # rows per restart interval at 4:2:0
_RST = re.compile(rb"\xff[\xd0-\xd7]")


@dataclass(frozen=True)
class Person:
    """Someone of LFW-dev with two photos or more: the first for their case, the last for the
    sightings."""

    identity: str
    case_photo: Path
    sighting_photo: Path


@dataclass(frozen=True)
class PhoneJpeg:
    """A phone JPEG whose uploads all differ in pixels, spliced from two encodings."""

    person: Person
    head: bytes  # markers up to the start of the entropy-coded data (same for both)
    plain: tuple[bytes, ...]  # entropy-coded data per restart interval (one MCU row each)
    marked: tuple[bytes, ...]

    def variant(self, number: int) -> bytes:
        rows = (m if (number >> i) & 1 else p
                for i, (p, m) in enumerate(zip(self.plain, self.marked, strict=True)))
        return b"".join((self.head, *rows, b"\xff\xd9"))


def lfw_people(data: Path) -> list[Person]:
    """LFW-dev people with 2+ photos, spread over the manifest."""
    by_identity: dict[str, list[Path]] = {}
    with (data / "lfw-dev" / "manifest.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_identity.setdefault(row["identity"], []).append(data / "lfw-dev" / row["path"])
    people = [Person(k, v[0], v[-1]) for k, v in by_identity.items() if len(v) >= 2]
    step = max(1, len(people) // 64)
    return people[::step] + [p for i, p in enumerate(people) if i % step]


def texture(rng: np.random.Generator, size: tuple[int, int], grain: float = 6.0) -> np.ndarray:
    """A face-free scene: coloured noise at several scales (shapes, edges) plus sensor grain."""
    width, height = size
    quarter = (width // 4, height // 4)
    total = np.zeros((quarter[1], quarter[0], 3), np.float32)
    for cells, weight in ((4, 70.0), (16, 45.0), (64, 30.0), (256, 20.0), (quarter[0], 12.0)):
        noise = rng.random((max(1, cells * height // width), cells, 3), dtype=np.float32)
        for c in range(3):
            plane = PILImage.fromarray(noise[:, :, c], mode="F")
            total[:, :, c] += (np.asarray(plane.resize(quarter, PILImage.Resampling.BICUBIC))
                               - 0.5) * weight
    smooth = PILImage.fromarray(np.clip(total + 128.0, 0, 255).astype(np.uint8))
    full = np.asarray(smooth.resize(size, PILImage.Resampling.BICUBIC), dtype=np.float32)
    full = full + rng.standard_normal(full.shape, dtype=np.float32) * np.float32(grain)
    return np.clip(full, 0, 255).astype(np.uint8)


def phone_exif(orientation: int) -> PILImage.Exif:
    exif = PILImage.Exif()
    exif[0x010F] = "Phonemaker"  # Make
    exif[0x0110] = "Phone X"  # Model
    exif[0x0112] = orientation
    exif[0x0132] = "2026:11:27 14:03:11"  # DateTime
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 26.0), 3: "W", 4: (0.0, 7.0, 39.0)}  # GPS IFD
    return exif


def _split(jpeg: bytes) -> tuple[bytes, tuple[bytes, ...]]:
    sos = jpeg.index(b"\xff\xda")
    start = sos + 2 + int.from_bytes(jpeg[sos + 2 : sos + 4], "big")
    if not jpeg.endswith(b"\xff\xd9"):
        raise RuntimeError("the encoder wrote a JPEG without EOI")
    data = jpeg[start:-2]
    cuts = [match.end() for match in _RST.finditer(data)]
    return jpeg[:start], tuple(data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)],
                                                         strict=True))


def phone_jpeg(person: Person, seed: int, orientation: int = 1) -> PhoneJpeg:
    """The person's sighting photo on a 12 MP scene, as a phone would store it.

    Orientation 6 (a portrait shot) stores the pixels turned a quarter left, as phones do.
    """
    rng = np.random.default_rng(seed)
    size = FULL_SIZE if orientation == 1 else FULL_SIZE[::-1]
    scene = texture(rng, size)
    with PILImage.open(person.sighting_photo) as photo:
        face = photo.convert("RGB")
    side = face.width * FACE_SCALE
    tile = np.asarray(face.resize((side, side), PILImage.Resampling.BICUBIC))
    x = int(rng.integers(size[0] // 6, size[0] - side - size[0] // 6))
    y = int(rng.integers(size[1] // 6, size[1] - side - size[1] // 6))
    scene[y : y + side, x : x + side] = tile
    stored = scene if orientation == 1 else np.ascontiguousarray(np.rot90(scene, 1))
    marked = stored.copy()
    marked[:, :MCU] = 255 - marked[:, :MCU]  # changes every MCU row, only in its first block
    exif = phone_exif(orientation)
    encoded = []
    for pixels in (stored, marked):
        out = io.BytesIO()
        PILImage.fromarray(pixels).save(out, format="JPEG", quality=JPEG_QUALITY, exif=exif,
                                        subsampling="4:2:0", restart_marker_rows=1)
        encoded.append(_split(out.getvalue()))
    (head, plain), (head_marked, marked_rows) = encoded
    if head != head_marked or len(plain) != len(marked_rows):
        raise RuntimeError("the two encodings do not share their headers")
    return PhoneJpeg(person, head, plain, marked_rows)


def describe_photos(photos: list[PhoneJpeg], orientation: int) -> str:
    """The photos in one line, for the report."""
    sizes = [len(photo.variant(0)) for photo in photos]
    return (f"{FULL_SIZE[0]}x{FULL_SIZE[1]} JPEG q{JPEG_QUALITY} 4:2:0, one face, EXIF GPS, "
            f"orientation {orientation}, {statistics.median(sizes) / 1e6:.1f} MB median, "
            f"{len(photos)} people")
