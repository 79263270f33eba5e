"""Sighting use cases: ingest a photo from a tip app, and read its ranked candidates.

Every face of the sighting is detected and embedded; every fit face is searched against the
active case index and its top `match_top_k` cases are stored as candidates (distance, rank,
model id, the threshold in force and the calibrated false match rate: `likelihood`), whether
or not they are under the threshold: an investigator may want the near misses, and the
threshold can be recalibrated later without re-running old sightings. Unfit faces (too small,
too blurred) are stored with their reasons but not searched: their descriptors drift too far to
rank cases (scripts/calibrate_quality.py).
A sighting with no usable face is kept, with the reasons.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from matcher.index import OwnerHits
from matcher.service import faces as face_ops
from matcher.service.alert_reports import check_reportable, reported_hits, with_reported
from matcher.service.confidence import case_thresholds
from matcher.service.likelihood import rated
from matcher.service.records import CandidateRecord, SightingRecord
from matcher.service.repeats import link_burst, report_again
from matcher.service.retro import index_sighting
from matcher.service.runtime import Runtime, holds_model
from matcher.store import (
    AuditEntry,
    NewCandidate,
    NewSighting,
    add_candidates,
    create_sighting,
    get_sighting,
    list_candidates,
    list_sightings,
    matchable,
    photo_transaction,
    record,
    session_scope,
)
from matcher.store.index_log import ChangeKind, log_change
from matcher.store.reports import add_report, reports_of, sighting_with_photo
from matcher.vocabulary import SYSTEM, Actor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SightingResult:
    sighting_id: int
    faces: list[face_ops.FaceFeedback]
    candidates: int  # rows stored, over all faces


@holds_model
def ingest_sighting(matcher: Runtime, data: bytes, new: NewSighting) -> SightingResult:
    """Decode, detect, embed, search, then store photo, faces and candidates together.

    Raises ImageError for unusable bytes and InvalidRecord for impossible values (e.g. a
    latitude without a longitude, an `alert_case_id` of no alert in the feed); nothing is
    stored then. The case whose alert the sighting answers is among the candidates of each fit
    face, whatever its rank (alert_reports.py).
    """
    reported = new.alert_case_id
    if reported is not None:
        check_reportable(matcher, reported)
    image = face_ops.decode(matcher, data)
    found = face_ops.detect(matcher, image)
    fit = [i for i, face in enumerate(found) if face.quality.fit]
    vectors = face_ops.vectors([found[i] for i in fit])
    k = matcher.settings.match_top_k
    searched_at = matcher.case_index_changes
    hits = matcher.index.search(vectors, k=k) if fit else None
    answer = reported_hits(matcher, vectors, reported) if fit and reported is not None else None
    with matcher.sessions() as session, photo_transaction(
        session, matcher.settings.data_dir, matcher.settings.max_image_pixels
    ) as photos:
        stored = photos.store(image)
        # The case lock comes before the first write, as in add_photo: taken inside our write
        # transaction (SQLite's write lock held) it deadlocked with an add_photo waiting for
        # that write lock under the case lock, until the busy timeout failed one of them.
        # Under it, a case closed after the search above cannot get a candidate: either its
        # closing commits first and `matchable` drops it, or ours does. And a case photo
        # added since the search cannot be missed: then we search again (its own search of
        # the sighting index could not see us yet; we join that index under this lock), nor
        # can a candidate name a case face removed since (the store would refuse it).
        with matcher.case_lock:
            if fit and matcher.case_index_changes != searched_at:
                hits = matcher.index.search(vectors, k=k)
                if answer is not None and reported is not None:
                    answer = reported_hits(matcher, vectors, reported)
            twin = sighting_with_photo(session, stored.sha256)
            if twin is None:
                sighting = create_sighting(
                    session, new, stored, face_ops.new_faces(found, matcher.pipeline)
                )
                face_ids = [sighting.faces[i].id for i in fit]
                proposed = _candidates(matcher, face_ids, hits)
                if answer is not None and reported is not None:
                    proposed = with_reported(proposed, face_ids, answer, reported,
                                             matcher.model_id, matcher.match_threshold)
                add_report(session, sighting.id, new)
                link_burst(session, sighting.id, image, new.taken_at or sighting.uploaded_at,
                           sighting.uploaded_at)
            else:  # the same photo again: a report of the sighting it is (repeats.py)
                sighting, face_ids = twin, []
                proposed = report_again(session, twin, new, answer, matcher.model_id,
                                        matcher.match_threshold)
            rows = matchable(session, proposed)
            thresholds = case_thresholds(matcher, session, {row.case_id for row in rows})
            rows = rated(matcher, session, [replace(row, threshold=thresholds[row.case_id])
                                            for row in rows])
            add_candidates(session, rows)
            if face_ids:  # the other processes add them to their sighting indexes
                log_change(session, ChangeKind.SIGHTING_FACES, sighting.id, face_ids)
            session.commit()
            if twin is None:  # committed: retro-matchable
                index_sighting(matcher, sighting.id, face_ids, vectors)
        sighting_id = sighting.id
    best = min((row.distance for row in rows), default=None)
    log.info("sighting %d: %d faces, %d fit, %d candidates, best distance %s", sighting_id,
             len(found), len(fit), len(rows), f"{best:.3f}" if best is not None else "-")
    return SightingResult(sighting_id, face_ops.feedback(found), len(rows))


def _candidates(matcher: Runtime, face_ids: list[int], hits: OwnerHits | None
                ) -> list[NewCandidate]:
    """The top-k cases of each searched face, in search order (threshold set by the caller)."""
    rows: list[NewCandidate] = []
    if hits is None:
        return rows
    for query, face_id in enumerate(face_ids):
        for rank, case_id in enumerate(hits.owners[query].tolist(), start=1):
            if case_id < 0:
                break
            rows.append(NewCandidate(
                sighting_face_id=face_id, case_id=case_id,
                case_face_id=int(hits.face_ids[query, rank - 1]),
                distance=float(hits.distances[query, rank - 1]), rank=rank,
                model_id=matcher.model_id, threshold=matcher.match_threshold))
    return rows


def sighting_candidates(
    matcher: Runtime, sighting_id: int, actor: Actor = SYSTEM, limit: int = 1000
) -> list[CandidateRecord]:
    """The sighting's candidates by face, then rank (SightingNotFound for an unknown id);
    each candidate read is audited."""
    with session_scope(matcher.sessions) as session:
        sighting = get_sighting(session, sighting_id)
        rows = [CandidateRecord.of(row, sighting)
                for row in list_candidates(session, sighting_id=sighting_id, limit=limit)]
        record(session, actor, *(AuditEntry("read", "candidate", row.id, {
            "sighting_id": sighting_id, "case_id": row.case_id}) for row in rows))
        return sorted(rows, key=lambda c: (c.sighting_face_id, c.rank))


def read_sighting(matcher: Runtime, sighting_id: int, actor: Actor = SYSTEM
                  ) -> SightingRecord:
    """The sighting with its faces (SightingNotFound for an unknown id); audited."""
    with session_scope(matcher.sessions) as session:
        sighting = SightingRecord.of(get_sighting(session, sighting_id),
                                     reports_of(session, [sighting_id])[sighting_id])
        record(session, actor, AuditEntry("read", "sighting", sighting_id))
        return sighting


def browse_sightings(
    matcher: Runtime, actor: Actor = SYSTEM, limit: int = 100, before_id: int | None = None
) -> list[SightingRecord]:
    """The newest sightings first, a page at a time (pass the last id as `before_id`)."""
    with session_scope(matcher.sessions) as session:
        rows = list_sightings(session, limit=limit, before_id=before_id)
        record(session, actor, *(AuditEntry("read", "sighting", row.id, {"via": "list"})
                                 for row in rows))
        reports = reports_of(session, [row.id for row in rows])
        return [SightingRecord.of(row, reports[row.id]) for row in rows]
