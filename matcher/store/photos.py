"""Photo files: content-addressed JPEGs under `<data_dir>/photos/ab/cd/<sha256>.jpg`.

Every photo is decoded and re-encoded, so nothing of the sender's file survives but its pixels:
no EXIF (GPS included), XMP, ICC profile or comment. The file is named by the SHA-256 of the
JPEG we wrote, so the same pixels give the same file and storing them twice writes nothing.

A row and its file appear together or not at all: the file is written first (harmless if
orphaned: it is named by its content), and `photo_transaction` deletes the files it created
when the database commit fails. Files left by a crash are found by `orphan_files`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import select, union
from sqlalchemy.orm import Session

from matcher.files import write_atomic
from matcher.store.errors import UnsupportedPhoto
from matcher.store.models import CasePhoto, Sighting

log = logging.getLogger(__name__)

PHOTOS = "photos"
JPEG_QUALITY = 92
# No `optimize=True`: its extra pass (Huffman tables fitted to the photo) decodes to the very
# same pixels and saves ~6% of a 12 MP phone photo's bytes, but made encoding 2-2.5x slower
# (~205 vs ~85 ms on 2 cores; scripts/bench_service.py --stages).
DEFAULT_MAX_PIXELS = 60_000_000


@dataclass(frozen=True)
class StoredPhoto:
    sha256: str
    path: str  # relative to the data dir, with forward slashes
    width: int
    height: int
    created: bool  # False when the same file was already there


def photo_path(sha256: str) -> str:
    return f"{PHOTOS}/{sha256[:2]}/{sha256[2:4]}/{sha256}.jpg"


def _decode(data: bytes, max_pixels: int) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > max_pixels:
                raise UnsupportedPhoto(f"photo of {image.width}x{image.height} px is larger "
                                       f"than {max_pixels} px")
            image.load()
            # Bake the orientation in: the EXIF tag that carried it is about to go.
            upright = ImageOps.exif_transpose(image)
            return upright.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise UnsupportedPhoto(f"not a decodable image: {error}") from error


def encode_jpeg(image: NDArray[np.uint8] | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """JPEG bytes of an RGB array or of any image file, with no metadata at all."""
    if isinstance(image, bytes | bytearray | memoryview):
        pixels = np.asarray(_decode(bytes(image), max_pixels))
    else:
        pixels = np.asarray(image)
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise UnsupportedPhoto(f"expected an (H, W, 3) uint8 RGB array, got {pixels.dtype} "
                                   f"of shape {pixels.shape}")
        if pixels.shape[0] * pixels.shape[1] > max_pixels:
            raise UnsupportedPhoto(f"photo of {pixels.shape[1]}x{pixels.shape[0]} px is too large")
    # A fresh image from bare pixels carries no info dict: nothing to leak into the file.
    clean = Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")
    # Into a file, not a BytesIO: PIL releases the GIL while it encodes to a file descriptor,
    # but holds it throughout for a BytesIO, so two workers' re-encodes ran one at a time.
    with _scratch_file() as out:
        clean.save(out, format="JPEG", quality=JPEG_QUALITY)
        out.seek(0)
        return out.read()


def _scratch_file() -> BinaryIO:
    """An anonymous file: in memory where the OS offers it (Linux memfd), else an unlinked
    temporary file."""
    try:
        return open(os.memfd_create("matcher-jpeg"), "w+b")
    except (AttributeError, OSError):  # not Linux, or a sandbox that forbids memfd
        return tempfile.TemporaryFile()


@dataclass(frozen=True)
class CleanJpeg:
    """A JPEG this module encoded from bare pixels (no metadata), ready to store: lets a caller
    encode off the database transaction, e.g. while faces are detected. Make it with
    `clean_jpeg`; bytes from anywhere else go through `store_photo`'s re-encode."""

    data: bytes = field(repr=False)
    sha256: str
    width: int
    height: int


def clean_jpeg(image: NDArray[np.uint8] | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> CleanJpeg:
    """`encode_jpeg` with the hash and size the store needs."""
    jpeg = encode_jpeg(image, max_pixels)
    with Image.open(io.BytesIO(jpeg)) as decoded:
        width, height = decoded.size
    return CleanJpeg(jpeg, hashlib.sha256(jpeg).hexdigest(), width, height)


def store_photo(
    data_dir: Path, image: NDArray[np.uint8] | bytes | CleanJpeg,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> StoredPhoto:
    """Re-encodes a photo without metadata and stores it by content (idempotent); a CleanJpeg
    is stored as it is."""
    clean = image if isinstance(image, CleanJpeg) else clean_jpeg(image, max_pixels)
    jpeg, sha256, width, height = clean.data, clean.sha256, clean.width, clean.height
    relative = photo_path(sha256)
    target = Path(data_dir) / relative
    created = not target.exists()
    if created:
        write_atomic(target, lambda handle: handle.write(jpeg))
        log.info("stored photo %s (%dx%d)", sha256[:12], width, height)
    else:
        # Reused by a transaction in flight: look young, so the orphan sweep leaves it alone.
        try:
            os.utime(target)
        except FileNotFoundError:  # swept in between: write it again
            write_atomic(target, lambda handle: handle.write(jpeg))
            created = True
    return StoredPhoto(sha256, relative, width, height, created)


def read_photo(data_dir: Path, relative: str) -> bytes:
    return (Path(data_dir) / relative).read_bytes()


def referenced_hashes(session: Session) -> set[str]:
    query = union(select(CasePhoto.sha256), select(Sighting.sha256))
    return set(session.scalars(query))


def is_referenced(session: Session, sha256: str) -> bool:
    return (
        session.scalar(select(CasePhoto.id).where(CasePhoto.sha256 == sha256).limit(1)) is not None
        or session.scalar(select(Sighting.id).where(Sighting.sha256 == sha256).limit(1))
        is not None
    )


@dataclass
class PhotoWriter:
    """Stores photos for one transaction and remembers the files it created."""

    data_dir: Path
    max_pixels: int = DEFAULT_MAX_PIXELS
    created: list[StoredPhoto] = field(default_factory=list)

    def store(self, image: NDArray[np.uint8] | bytes | CleanJpeg) -> StoredPhoto:
        photo = store_photo(self.data_dir, image, self.max_pixels)
        if photo.created:
            self.created.append(photo)
        return photo


@contextmanager
def photo_transaction(
    session: Session, data_dir: Path, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Iterator[PhotoWriter]:
    """Store files and add rows inside the block; it commits at the end.

    If the block or the commit fails, the session is rolled back and the files this block created
    are deleted again, unless a committed row of another transaction uses the same content.
    """
    writer = PhotoWriter(Path(data_dir), max_pixels)
    try:
        yield writer
        session.commit()
    except BaseException:
        session.rollback()
        _discard(session, writer)
        raise


def _discard(session: Session, writer: PhotoWriter) -> None:
    for photo in writer.created:
        try:
            # Another transaction may have stored the same pixels meanwhile and committed.
            keep = is_referenced(session, photo.sha256)
            session.rollback()
        except Exception:  # the database may be what failed: keep the file, sweep it later
            log.warning("could not check photo %s after a failed commit", photo.sha256[:12])
            continue
        if not keep:
            (writer.data_dir / photo.path).unlink(missing_ok=True)
            log.info("removed photo %s of a failed transaction", photo.sha256[:12])


def _photo_files(data_dir: Path) -> Iterator[Path]:
    root = Path(data_dir) / PHOTOS
    if root.is_dir():
        yield from root.glob("*/*/*")


def orphan_files(session: Session, data_dir: Path, min_age_s: float = 3600.0) -> list[Path]:
    """Files under photos/ that no row references (and leftover temp files).

    Only files older than `min_age_s` are listed: a younger one may belong to a transaction that
    has not committed yet.
    """
    referenced = referenced_hashes(session)
    cutoff = time.time() - min_age_s
    orphans = []
    for path in _photo_files(data_dir):
        if not path.is_file() or path.stat().st_mtime > cutoff:
            continue
        if path.name.endswith(".tmp") or path.stem not in referenced:
            orphans.append(path)
    return sorted(orphans)


def remove_orphans(session: Session, data_dir: Path, min_age_s: float = 3600.0) -> list[Path]:
    """Deletes what `orphan_files` finds; returns the paths removed."""
    orphans = orphan_files(session, data_dir, min_age_s)
    for path in orphans:
        path.unlink(missing_ok=True)
    if orphans:
        log.info("removed %d orphan photo files", len(orphans))
    return orphans
