"""Retention: old sightings that matched nobody are purged, and a case is erased on request,
each with its files, vectors and index entries, so that no later reindex can bring it back."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from matcher.index import FaceIndex
from matcher.service.context import Matcher, holds_model
from matcher.store import SYSTEM, Actor, AuditEntry, is_referenced, photo_path, record
from matcher.store.retention import delete_sightings, erase_case, unmatched_sightings

log = logging.getLogger(__name__)

BATCH = 500


def remove_unreferenced_files(matcher: Matcher, sha256s: Iterable[str]) -> int:
    """Deletes the photo files no row uses any more (a file may be shared: same pixels)."""
    removed = 0
    with matcher.sessions() as session:
        for sha256 in sha256s:
            if not is_referenced(session, sha256):
                (matcher.settings.data_dir / photo_path(sha256)).unlink(missing_ok=True)
                removed += 1
    return removed


def drop_faces(index: FaceIndex, face_ids: list[int]) -> int:
    """Removes those of the faces the index holds (others were never in it); returns how many."""
    present = np.asarray(face_ids, dtype=np.int64)
    with index.read_state() as state:
        present = present[state.owners.contains(present)] if present.size else present
    if present.size:
        index.remove(present)
    return int(present.size)


@dataclass(frozen=True)
class PurgeReport:
    sightings: int
    faces: int
    files: int
    uploaded_before: dt.datetime
    dry_run: bool


@holds_model
def purge_sightings(matcher: Matcher, older_than_days: float, actor: Actor = SYSTEM,
                    dry_run: bool = False) -> PurgeReport:
    """Deletes sightings older than the period with no candidate pending, asked about or
    confirmed, with their faces, vectors, candidates, decisions, files and index entries."""
    before = dt.datetime.now(dt.UTC) - dt.timedelta(days=older_than_days)
    sightings = faces = files = 0
    while True:
        with matcher.sessions() as session, session.begin():
            ids = unmatched_sightings(session, before, BATCH)
            if not ids or dry_run:
                sightings += len(ids)
                break
            deleted = delete_sightings(session, ids)
            record(session, actor, AuditEntry("purge", "sightings", f"{ids[0]}-{ids[-1]}",
                                              {"count": len(ids)}))
        drop_faces(matcher.sighting_index, deleted.face_ids)
        files += remove_unreferenced_files(matcher, deleted.sha256s)
        sightings, faces = sightings + len(ids), faces + len(deleted.face_ids)
        if len(ids) < BATCH:
            break
    if sightings and not dry_run:
        log.info("purged %d sightings uploaded before %s (%d faces, %d files)", sightings,
                 before.date(), faces, files)
    return PurgeReport(sightings, faces, files, before, dry_run)


@holds_model
def erase(matcher: Matcher, case_id: int, actor: Actor = SYSTEM) -> None:
    """Erases a case (a family's or a court's request): rows, vectors, candidates, decisions,
    files and index entries. The audit keeps that it happened, not what it held."""
    with matcher.case_lock:
        with matcher.sessions() as session, session.begin():
            deleted = erase_case(session, case_id)
            record(session, actor, AuditEntry("erase", "case", case_id,
                                              {"faces": len(deleted.face_ids)}))
        matcher.index.remove_owner(case_id)
    files = remove_unreferenced_files(matcher, deleted.sha256s)
    log.info("case %d erased: %d faces, %d files", case_id, len(deleted.face_ids), files)
