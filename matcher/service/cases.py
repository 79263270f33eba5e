"""Case use cases: register a case, add and remove its photos, edit it, change its status.

Every change is committed to the store first and applied to the active index before the
function returns: a case marked found or closed is out of the very next search. Every change
and every read is recorded in the audit trail, in the same transaction, under the `actor`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from matcher.embed.types import Face as DetectedFace
from matcher.embed.types import Image
from matcher.service import faces as face_ops
from matcher.service.alerts import outcome_of, public_edit, resolve_case_alert
from matcher.service.errors import DuplicatePhoto
from matcher.service.records import CaseDetail, CaseRecord
from matcher.service.retention import drop_faces, remove_unreferenced_files
from matcher.service.retro import retro_match
from matcher.service.runtime import Runtime, holds_model
from matcher.store import (
    AuditEntry,
    CaseNotFound,
    NewCase,
    add_case_photo,
    case_face_rows,
    delete_case_photo,
    edit_case,
    get_case,
    list_cases,
    photo_transaction,
    record,
    session_scope,
    set_case_status,
    set_public_fields,
)
from matcher.store import create_case as store_case
from matcher.store.cases import case_photo_with, case_status
from matcher.store.index_log import ChangeKind, log_change
from matcher.store.vectors import CaseFaceCounts, case_face_counts
from matcher.vocabulary import SYSTEM, Actor, CaseStatus, Category

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CasePhotoUpload:
    data: bytes
    taken_on: dt.date | None = None
    age_at_photo: float | None = None


@dataclass(frozen=True)
class CasePhotoResult:
    case_id: int
    photo_id: int
    faces: list[face_ops.FaceFeedback]


def create_case(matcher: Runtime, new: NewCase, actor: Actor = SYSTEM) -> CaseDetail:
    """A new active case with no photos yet (raises InvalidRecord for impossible values)."""
    with session_scope(matcher.sessions) as session:
        case_id = store_case(session, new).id
        record(session, actor, AuditEntry("create", "case", case_id))
    with matcher.sessions() as session:
        return CaseDetail.of(get_case(session, case_id))


@holds_model
def add_photo(
    matcher: Runtime, case_id: int, upload: CasePhotoUpload, actor: Actor = SYSTEM
) -> CasePhotoResult:
    """Stores a case photo with its faces; an active case's faces join the index at once.

    Raises ImageError for unusable bytes, CaseNotFound, DuplicatePhoto (the case has these
    pixels already); nothing is stored on failure. A retry of an upload that failed after its
    commit (or whose answer was lost) gets DuplicatePhoto, and finishes what followed the
    commit: matching the case against the earlier sightings.
    """
    image = face_ops.decode(matcher, upload.data)
    found = face_ops.detect(matcher, image)
    with matcher.case_lock:
        try:
            face_ids, photo_id, active = _store_photo(matcher, case_id, upload, image, found,
                                                      actor)
        except DuplicatePhoto:
            _match_earlier_sightings(matcher, case_id)
            raise
        if active and face_ids:
            # add_new: idempotent, as the change log's follower applies the same change.
            matcher.index.add_new(np.asarray(face_ids, dtype=np.int64),
                                  np.full(len(face_ids), case_id, dtype=np.int64),
                                  face_ops.vectors(found))
            matcher.case_index_changes += 1
            retro_match(matcher, case_id, face_ids, face_ops.vectors(found))  # earlier sightings
            indexed = len(face_ids)
        else:
            indexed = 0
    log.info("case %d: photo %d, %d faces indexed", case_id, photo_id, indexed)
    return CasePhotoResult(case_id, photo_id, face_ops.feedback(found))


def _store_photo(matcher: Runtime, case_id: int, upload: CasePhotoUpload, image: Image,
                 found: list[DetectedFace], actor: Actor) -> tuple[list[int], int, bool]:
    """The photo's file, row and faces, committed together; (face ids, photo id, whether the
    case is active)."""
    with matcher.sessions() as session, photo_transaction(
        session, matcher.settings.data_dir, matcher.settings.max_image_pixels
    ) as photos:
        status = case_status(session, case_id)
        if status is None:
            raise CaseNotFound(f"no case {case_id}")
        stored = photos.store(image)
        twin = case_photo_with(session, case_id, stored.sha256)
        if twin is not None:
            raise DuplicatePhoto(f"case {case_id} already has this photo ({twin})", twin)
        with public_edit(session, case_id, matcher.clock(), actor):
            row = add_case_photo(
                session, case_id, stored, face_ops.new_faces(found, matcher.pipeline),
                taken_on=upload.taken_on, age_at_photo=upload.age_at_photo,
            )
        face_ids = [face.id for face in row.faces]
        record(session, actor, AuditEntry("create", "case_photo", row.id,
                                          {"case_id": case_id, "faces": len(face_ids)}))
        if status is CaseStatus.ACTIVE and face_ids:
            log_change(session, ChangeKind.CASE_FACES, case_id, face_ids)
        return face_ids, row.id, status is CaseStatus.ACTIVE


def _match_earlier_sightings(matcher: Runtime, case_id: int) -> None:
    """Searches every face of an active case against the stored sightings (pairs that have a
    candidate already are skipped, so running it again is harmless)."""
    with matcher.sessions() as session:
        batches = list(case_face_rows(session, case_id, matcher.model_id))
    for face_ids, _, vectors in batches:
        retro_match(matcher, case_id, face_ids.tolist(), vectors)


def register_case(
    matcher: Runtime, new: NewCase, photos: Sequence[CasePhotoUpload] = (),
    actor: Actor = SYSTEM,
) -> tuple[CaseDetail, list[CasePhotoResult]]:
    """A case and its photos (each photo is its own transaction; the case comes first)."""
    case = create_case(matcher, new, actor)
    return case, [add_photo(matcher, case.id, photo, actor) for photo in photos]


@holds_model
def remove_photo(matcher: Runtime, case_id: int, photo_id: int, actor: Actor = SYSTEM) -> None:
    """Deletes a case photo, its faces (out of the index before this returns) and the
    candidates they produced; the file goes too unless another row uses the same pixels."""
    with matcher.case_lock:
        with session_scope(matcher.sessions) as session:
            with public_edit(session, case_id, matcher.clock(), actor):
                face_ids, sha256 = delete_case_photo(session, case_id, photo_id)
            record(session, actor, AuditEntry("delete", "case_photo", photo_id,
                                              {"case_id": case_id, "faces": len(face_ids)}))
            if face_ids:
                log_change(session, ChangeKind.CASE_FACES_GONE, case_id, face_ids)
        gone = drop_faces(matcher.index, face_ids)
        # A sighting searched before this must not write a candidate for a face now gone.
        matcher.case_index_changes += 1
    remove_unreferenced_files(matcher, [sha256])
    log.info("case %d: photo %d removed, %d faces left the index", case_id, photo_id, gone)


@holds_model
def update_case(
    matcher: Runtime, case_id: int, status: CaseStatus | str | None = None,
    public_fields: Sequence[str] | None = None, actor: Actor = SYSTEM,
    changes: Mapping[str, Any] | None = None,
) -> CaseDetail:
    """Changes descriptive fields (`changes`, see EDITABLE_CASE_FIELDS), status and/or public
    fields in one transaction: a refused part changes nothing. Found/closed cases leave the
    index before this returns; a case made active again comes back through a rebuild from the
    store (removed face ids cannot be re-added to a FAISS collection before it is rebuilt) and
    is matched against the stored sightings, as a new case photo is."""
    with matcher.case_lock:
        with session_scope(matcher.sessions) as session:
            was = case_status(session, case_id)
            if was is None:
                raise CaseNotFound(f"no case {case_id}")
            was_active = was is CaseStatus.ACTIVE
            with public_edit(session, case_id, matcher.clock(), actor):
                if changes:
                    edit_case(session, case_id, dict(changes))
                if public_fields is not None:
                    set_public_fields(session, case_id, public_fields)
                if status is not None:
                    set_case_status(session, case_id, status)
                    if was_active and CaseStatus(status) is not CaseStatus.ACTIVE:
                        # Found or closed: its alert tells the apps so, in the same commit.
                        resolve_case_alert(session, case_id, outcome_of(CaseStatus(status)),
                                           matcher.clock(), actor)
            record(session, actor, AuditEntry("update", "case", case_id, {
                "fields": sorted(changes or ()),
                "status": None if status is None else CaseStatus(status).value,
                "was": was.value if status is not None else None,
                "public_fields": None if public_fields is None else list(public_fields)}))
            if status is not None and (CaseStatus(status) is CaseStatus.ACTIVE) != was_active:
                log_change(session, ChangeKind.CASE_OUT if was_active else ChangeKind.CASE_IN,
                           case_id)
        with matcher.sessions() as session:
            case = CaseDetail.of(get_case(session, case_id))
        now_active = case.status is CaseStatus.ACTIVE
        if was_active and not now_active:
            removed = matcher.index.remove_owner(case_id)
            log.info("case %d is %s: %d faces left the index", case_id, case.status.value,
                     removed)
        elif now_active and not was_active:
            matcher.rebuild_index()
            matcher.case_index_changes += 1  # sightings searched meanwhile search again
            # Sightings that came in while the case was closed were never compared with it.
            _match_earlier_sightings(matcher, case_id)
    return case


def read_case(matcher: Runtime, case_id: int, actor: Actor = SYSTEM) -> CaseDetail:
    """The case with its photos and their faces; the read is audited."""
    with session_scope(matcher.sessions) as session:
        case = CaseDetail.of(get_case(session, case_id))
        record(session, actor, AuditEntry("read", "case", case_id))
        return case


def browse_cases(
    matcher: Runtime, actor: Actor = SYSTEM, status: CaseStatus | None = None,
    category: Category | None = None, limit: int = 100, after_id: int = 0,
    matchable: bool | None = None,
) -> list[CaseRecord]:
    """A page of cases by id (keyset: pass the last id as `after_id`); each one read is audited.
    `matchable` keeps the cases a sighting can (True) or cannot (False) find today."""
    with session_scope(matcher.sessions) as session:
        cases = list_cases(session, status=status, category=category, limit=limit,
                           after_id=after_id, matchable_by=None if matchable is None
                           else (matcher.model_id, matchable))
        record(session, actor, *(AuditEntry("read", "case", case.id, {"via": "list"})
                                 for case in cases))
        return [CaseRecord.of(case) for case in cases]


@dataclass(frozen=True)
class CaseMatching:
    """Whether a sighting can find the case under the serving model, and if not, why: a case
    manager must learn that a case cannot be matched before a sighting goes unnoticed."""

    model_id: str
    photos: int
    faces: int  # found in the case's photos
    matchable_faces: int  # of those, the ones the serving model has a vector of
    matchable: bool  # active, with at least one matchable face
    reason: str | None  # why not, and what to do; None when matchable


def case_matching(matcher: Runtime, cases: Sequence[CaseRecord]) -> dict[int, CaseMatching]:
    """The matching state of each case (one query for them all), by case id."""
    model_id = matcher.model_id
    with matcher.sessions() as session:
        counts = case_face_counts(session, model_id, [case.id for case in cases])
    return {case.id: _matching(case.status, counts.get(case.id, CaseFaceCounts(0, 0, 0)),
                               model_id) for case in cases}


def _matching(status: CaseStatus, counts: CaseFaceCounts, model_id: str) -> CaseMatching:
    if status is not CaseStatus.ACTIVE:
        reason: str | None = f"the case is {status.value}: it is out of matching"
    elif counts.photos == 0:
        reason = "the case has no photo: add a photo of the person's face"
    elif counts.faces == 0:
        reason = ("no face was found in the case's photos: add a photo where the face is "
                  "large, sharp and turned to the camera")
    elif counts.with_vectors == 0:
        reason = (f"the serving model {model_id} has no descriptor of any of the case's "
                  f"{counts.faces} faces (a reindex to it could not find them again): add a "
                  "clearer photo")
    else:
        reason = None
    return CaseMatching(model_id, counts.photos, counts.faces, counts.with_vectors,
                        reason is None, reason)
