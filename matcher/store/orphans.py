"""The orphan sweep: photo files no row references, left by a crash between a file and its
commit (or between an erasure's commit and its files), found and deleted once they are old
enough that no transaction in flight can still be about to commit a row using them."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.orm import Session

from matcher.store.photos import (
    FILE_USERS,
    PHOTOS,
    referenced_hashes,
    unlink_unreferenced,
)

log = logging.getLogger(__name__)


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
    """Deletes what `orphan_files` finds, each file checked again under its lock (still old,
    unused, unreferenced: a transaction may have reused it since the listing); returns the
    paths removed."""
    removed = [path for path in orphan_files(session, data_dir, min_age_s)
               if _remove_orphan(session, path, min_age_s)]
    if removed:
        log.info("removed %d orphan photo files", len(removed))
    return removed


def _remove_orphan(session: Session, path: Path, min_age_s: float) -> bool:
    if path.name.endswith(".tmp"):  # an old write cut off by a crash: nothing will use it
        path.unlink(missing_ok=True)
        return True
    key = path.absolute()
    stripe = FILE_USERS.stripe(key)
    with stripe.lock:
        if stripe.users[key] or _too_young_to_sweep(path, min_age_s):
            return False
        return unlink_unreferenced(session, path.stem, path)


def _too_young_to_sweep(path: Path, min_age_s: float) -> bool:
    """True for a file touched within `min_age_s` (a reuse makes it young), and for one
    already gone."""
    try:
        return path.stat().st_mtime > time.time() - min_age_s
    except FileNotFoundError:
        return True
