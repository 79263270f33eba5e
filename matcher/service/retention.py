"""Retention: old sightings that matched nobody are purged, and a case is erased on request,
each with its files, vectors and index entries, so that no later reindex can bring it back.

On SQLite both end by emptying the write-ahead log (`wipe_deleted`): the deleted rows' old
versions sat in `matcher.db-wal` until a checkpoint, readable by anyone who copied the file
(a backup, a crash dump) after the erasure had been answered."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from matcher.index import FaceIndex
from matcher.service.alerts import erase_case_alerts
from matcher.service.runtime import Runtime, holds_model
from matcher.service.store_fit import note_erased_case
from matcher.store import AuditEntry, orphan_files, record, remove_orphans, truncate_wal
from matcher.store.index_log import ChangeKind, log_change
from matcher.store.photos import remove_if_unreferenced
from matcher.store.retention import (
    DeletedSightings,
    count_unmatched_sightings,
    delete_sightings,
    erase_case,
    unmatched_sightings,
)
from matcher.vocabulary import SYSTEM, Actor

log = logging.getLogger(__name__)

BATCH = 500


def remove_unreferenced_files(matcher: Runtime, sha256s: Iterable[str]) -> int:
    """Deletes the photo files no row uses any more (a file may be shared: same pixels), nor
    a transaction in flight (its end deletes the file if it is still unused); returns how
    many files went."""
    with matcher.sessions() as session:
        return sum(remove_if_unreferenced(session, matcher.settings.data_dir, sha256)
                   for sha256 in sha256s)


def sweep_orphans(matcher: Runtime, dry_run: bool = False) -> int:
    """Deletes the photo files no row references that are older than an hour (left by a
    crash between a file and its commit, or between an erasure's commit and its files);
    returns how many (would) go. Younger files may belong to a transaction in flight."""
    with matcher.sessions() as session:
        if dry_run:
            return len(orphan_files(session, matcher.settings.data_dir))
        return len(remove_orphans(session, matcher.settings.data_dir))


def wipe_deleted(matcher: Runtime, what: str) -> bool:
    """Empties SQLite's write-ahead log after a deletion (`truncate_wal`; secure_delete has
    zeroed the rows in their pages), so the deleted text is in neither file. A reader on an
    older snapshot for longer than the tries wait keeps the old pages in the log: then this
    warns, and the housekeeping round's checkpoint empties it. True when nothing is left."""
    if truncate_wal(matcher.engine):
        return True
    log.warning("%s: a reader kept SQLite's write-ahead log from being emptied; the deleted "
                "rows' old versions stay in matcher.db-wal until the next housekeeping round "
                "empties it", what)
    return False


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
def purge_sightings(matcher: Runtime, older_than_days: float, actor: Actor = SYSTEM,
                    dry_run: bool = False) -> PurgeReport:
    """Deletes sightings older than the period with no candidate pending, asked about or
    confirmed, with their faces, vectors, candidates, decisions, files and index entries."""
    before = dt.datetime.now(dt.UTC) - dt.timedelta(days=older_than_days)
    if dry_run:
        with matcher.sessions() as session:
            return PurgeReport(count_unmatched_sightings(session, before), 0, 0, before, True)
    sightings = faces = files = 0
    while True:
        chosen, deleted = _purge_batch(matcher, before, actor)
        files += _forget(matcher, deleted)
        sightings, faces = sightings + len(deleted.sighting_ids), faces + len(deleted.face_ids)
        # A short batch was the last; an empty deletion means the rest is needed after all
        # (and choosing them again would loop).
        if chosen < BATCH or not deleted.sighting_ids:
            break
    if sightings:
        log.info("purged %d sightings uploaded before %s (%d faces, %d files)", sightings,
                 before.date(), faces, files)
        wipe_deleted(matcher, f"purge of {sightings} sightings")
    return PurgeReport(sightings, faces, files, before, dry_run)


def _purge_batch(matcher: Runtime, before: dt.datetime, actor: Actor
                 ) -> tuple[int, DeletedSightings]:
    """Chooses up to BATCH sightings and deletes those still unmatched when the delete runs
    (one transaction, audited); returns how many were chosen and what went."""
    with matcher.sessions() as session, session.begin():
        chosen = unmatched_sightings(session, before, BATCH)
        deleted = delete_sightings(session, chosen, before)
        ids = deleted.sighting_ids
        if ids:
            record(session, actor, AuditEntry("purge", "sightings", f"{ids[0]}-{ids[-1]}",
                                              {"count": len(ids)}))
        if deleted.face_ids:
            log_change(session, ChangeKind.SIGHTING_FACES_GONE, None, deleted.face_ids)
    return len(chosen), deleted


def _forget(matcher: Runtime, deleted: DeletedSightings) -> int:
    """Takes deleted sightings out of the sighting index and their files off the disk;
    returns how many files went."""
    if not deleted.sighting_ids:
        return 0
    drop_faces(matcher.sighting_index, deleted.face_ids)
    return remove_unreferenced_files(matcher, deleted.sha256s)


@holds_model
def erase(matcher: Runtime, case_id: int, actor: Actor = SYSTEM) -> None:
    """Erases a case (a family's or a court's request): rows, vectors, candidates, decisions,
    files and index entries. The audit keeps that it happened, not what it held."""
    with matcher.case_lock:
        with matcher.sessions() as session, session.begin():
            erase_case_alerts(session, case_id, matcher.clock(), actor)  # apps take it down
            deleted = erase_case(session, case_id)
            record(session, actor, AuditEntry("erase", "case", case_id,
                                              {"faces": len(deleted.face_ids)}))
            log_change(session, ChangeKind.CASE_OUT, case_id)
        matcher.index.remove_owner(case_id)
    wipe_deleted(matcher, f"case {case_id} erased")  # before the caller answers
    files = remove_unreferenced_files(matcher, deleted.sha256s)
    log.info("case %d erased: %d faces, %d files", case_id, len(deleted.face_ids), files)
    note_erased_case(matcher, case_id)  # the serving projection may have been fitted on it
