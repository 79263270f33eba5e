"""Photo files: content-addressed JPEGs under `<data_dir>/photos/ab/cd/<sha256>.jpg`.

Every photo is decoded and re-encoded, so nothing of the sender's file survives but its pixels:
no EXIF (GPS included), XMP, ICC profile or comment. The file is named by the SHA-256 of the
JPEG we wrote, so the same pixels give the same file and storing them twice writes nothing.

A row and its file appear together or not at all: the file is written first (harmless if
orphaned: it is named by its content), and `photo_transaction` deletes the files it stored
when the database commit fails. Files left by a crash are found by `orphan_files`.

A file is shared by every row with the same pixels, so a file is deleted only when no committed
row references it and no transaction of this process in flight has stored or reused it
(`FileUsers`): otherwise a sighting reusing a case photo's file could commit just after the
erased case's file went.

Another process (several servers of one store, a `matcher purge` beside them) is not in that
count. Between processes the order is kept through the store: a deletion sets the file aside,
reads the references again, and puts it back if a row committed meanwhile; a transaction that
stored or reused a file writes it again after its commit if it is gone. Whichever order the
two take, the committed row keeps its file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import threading
from collections import Counter
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
    return _store_clean(Path(data_dir), _as_clean(image, max_pixels))


def _as_clean(image: NDArray[np.uint8] | bytes | CleanJpeg, max_pixels: int) -> CleanJpeg:
    return image if isinstance(image, CleanJpeg) else clean_jpeg(image, max_pixels)


def _store_clean(data_dir: Path, clean: CleanJpeg) -> StoredPhoto:
    jpeg, sha256, width, height = clean.data, clean.sha256, clean.width, clean.height
    relative = photo_path(sha256)
    target = data_dir / relative
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
class _Stripe:
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: Counter[Path] = field(default_factory=Counter)  # transactions in flight, per file
    recheck: set[Path] = field(default_factory=set)  # deletions asked for while in use


class FileUsers:
    """The transactions of this process in flight that have stored or reused each photo file.

    Starting to use a file and deleting it take the same lock (one of `stripes`, by path), so
    no deletion falls between a transaction finding its file there and its commit. A deletion
    asked for while the file is in use is left to its last user, which checks the references
    again when its transaction is over.

    In memory: it orders the threads of one process. Between processes (several servers,
    `matcher purge` beside them) the order is kept through the store: see the module's
    docstring.
    """

    def __init__(self, stripes: int = 64) -> None:
        self._stripes = tuple(_Stripe() for _ in range(stripes))

    def stripe(self, path: Path) -> _Stripe:
        return self._stripes[hash(path) % len(self._stripes)]


# One per process, not per Runtime: every session of the process that opens the same data dir
# (the server's workers, its maintenance thread, a second Runtime) shares these files.
FILE_USERS = FileUsers()


def _file(data_dir: Path, sha256: str) -> Path:
    """The key a file is locked and counted under: one spelling per file."""
    return (Path(data_dir) / photo_path(sha256)).absolute()


def remove_if_unreferenced(session: Session, data_dir: Path, sha256: str) -> bool:
    """Deletes a photo file unless a committed row references it or a transaction of this
    process in flight uses it (that one checks again when it ends); True if a file went."""
    path = _file(data_dir, sha256)
    stripe = FILE_USERS.stripe(path)
    with stripe.lock:
        if stripe.users[path]:
            stripe.recheck.add(path)
            return False
        return unlink_unreferenced(session, sha256, path)


def unlink_unreferenced(session: Session, sha256: str, path: Path) -> bool:
    """Called under the file's lock. Each statement reads the latest commits (READ COMMITTED
    on PostgreSQL; on SQLite reads run outside a transaction, see store/db.py), so a commit
    made before the lock was taken is seen. Another process's commit after that read is
    caught by the second read, made once the file is set aside (or by that process's own
    check after its commit, `PhotoWriter.keep_files`)."""
    if is_referenced(session, sha256):
        return False
    aside = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.deleting")
    try:
        path.rename(aside)
    except FileNotFoundError:
        return False
    if is_referenced(session, sha256):  # committed by another process meanwhile: keep it
        try:
            os.link(aside, path)
        except FileExistsError:  # that process wrote it again already
            pass
        aside.unlink()
        log.info("kept photo %s: a row referencing it committed while it was deleted",
                 sha256[:12])
        return False
    aside.unlink()
    log.info("removed photo %s, no row references it", sha256[:12])
    return True


@dataclass
class PhotoWriter:
    """Stores photos for one transaction: remembers the files it created, and counts as a
    user of every file it stored (FILE_USERS) until `photo_transaction` ends."""

    data_dir: Path
    max_pixels: int = DEFAULT_MAX_PIXELS
    created: list[StoredPhoto] = field(default_factory=list)
    used: list[str] = field(default_factory=list)  # sha256 of every file stored or reused
    cleans: dict[str, CleanJpeg] = field(default_factory=dict)  # their bytes, by sha256

    def store(self, image: NDArray[np.uint8] | bytes | CleanJpeg) -> StoredPhoto:
        clean = _as_clean(image, self.max_pixels)
        # A user before looking for the file: a deletion from now on leaves it to us.
        self._use(clean.sha256)
        self.cleans[clean.sha256] = clean
        photo = _store_clean(self.data_dir, clean)
        if photo.created:
            self.created.append(photo)
        return photo

    def keep_files(self, session: Session) -> None:
        """After the commit: a file another process deleted since it was stored or reused
        (it read no reference before ours committed) is written again, if a row still
        references it."""
        for sha256, clean in self.cleans.items():
            if not (self.data_dir / photo_path(sha256)).exists() and is_referenced(session,
                                                                                   sha256):
                _store_clean(self.data_dir, clean)
                log.warning("photo %s was deleted by another process while this "
                            "transaction committed a row using it: written again", sha256[:12])

    def _use(self, sha256: str) -> None:
        path = _file(self.data_dir, sha256)
        stripe = FILE_USERS.stripe(path)
        with stripe.lock:
            stripe.users[path] += 1
        self.used.append(sha256)


@contextmanager
def photo_transaction(
    session: Session, data_dir: Path, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Iterator[PhotoWriter]:
    """Store files and add rows inside the block; it commits at the end.

    If the block or the commit fails, the session is rolled back and the files this block
    stored are deleted again, unless a committed row or another transaction in flight uses
    the same content. No file it stored is deleted by anyone until the block is over.
    """
    # Absolute: the files it uses are counted under these paths until the block ends.
    writer = PhotoWriter(Path(data_dir).absolute(), max_pixels)
    try:
        yield writer
        session.commit()
    except BaseException:
        try:
            session.rollback()
        finally:
            _release(session, writer, failed=True)
        raise
    try:
        writer.keep_files(session)
    finally:
        _release(session, writer, failed=False)


def _release(session: Session, writer: PhotoWriter, failed: bool) -> None:
    """Stops counting the writer as a user of its files. The last user of a file checks its
    references when a deletion waited for it, or when its own transaction failed."""
    checked = False
    for sha256 in writer.used:
        path = _file(writer.data_dir, sha256)
        stripe = FILE_USERS.stripe(path)
        with stripe.lock:
            stripe.users[path] -= 1
            if stripe.users[path] > 0:
                continue
            del stripe.users[path]
            due = failed or path in stripe.recheck
            stripe.recheck.discard(path)
            if due:
                _check_quietly(session, sha256, path)
                checked = True
    if failed and checked:
        _end_read(session)


def _check_quietly(session: Session, sha256: str, path: Path) -> None:
    try:
        unlink_unreferenced(session, sha256, path)
    except Exception:  # the database may be what failed: keep the file, the sweep takes it
        log.warning("could not check photo %s at the end of a transaction", sha256[:12])


def _end_read(session: Session) -> None:
    try:
        session.rollback()  # no transaction left open by the checks
    except Exception:
        log.warning("could not roll back after checking the photos of a failed transaction")
