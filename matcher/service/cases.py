"""Case use cases: register a case, add its photos, change its status.

Every change is committed to the store first and applied to the active index before the
function returns: a case marked found or closed is out of the very next search.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from matcher.service import faces as face_ops
from matcher.service.context import Matcher
from matcher.service.errors import DuplicatePhoto
from matcher.store import (
    Case,
    CaseNotFound,
    CasePhoto,
    CaseStatus,
    NewCase,
    add_case_photo,
    get_case,
    photo_transaction,
    session_scope,
    set_case_status,
    set_public_fields,
)
from matcher.store import create_case as store_case

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


def create_case(matcher: Matcher, new: NewCase) -> Case:
    """A new active case with no photos yet (raises InvalidRecord for impossible values)."""
    with session_scope(matcher.sessions) as session:
        case_id = store_case(session, new).id
    return read_case(matcher, case_id)  # with its (empty) photos loaded for the caller


def add_photo(matcher: Matcher, case_id: int, upload: CasePhotoUpload) -> CasePhotoResult:
    """Stores a case photo with its faces; an active case's faces join the index at once.

    Raises ImageError for unusable bytes, CaseNotFound, DuplicatePhoto (the case has these
    pixels already); nothing is stored on failure.
    """
    image = face_ops.decode(matcher, upload.data)
    found = face_ops.detect(matcher, image)
    with matcher.case_lock:
        with matcher.sessions() as session, photo_transaction(
            session, matcher.settings.data_dir, matcher.settings.max_image_pixels
        ) as photos:
            case = session.get(Case, case_id)
            if case is None:
                raise CaseNotFound(f"no case {case_id}")
            active = case.status is CaseStatus.ACTIVE
            stored = photos.store(image)
            twin = session.scalar(select(CasePhoto.id).where(
                CasePhoto.case_id == case_id, CasePhoto.sha256 == stored.sha256))
            if twin is not None:
                raise DuplicatePhoto(f"case {case_id} already has this photo ({twin})", twin)
            row = add_case_photo(
                session, case_id, stored, face_ops.new_faces(found, matcher.model_id),
                taken_on=upload.taken_on, age_at_photo=upload.age_at_photo,
            )
            face_ids = [face.id for face in row.faces]
            photo_id = row.id
        if active and face_ids:
            matcher.index.add(np.asarray(face_ids, dtype=np.int64),
                              np.full(len(face_ids), case_id, dtype=np.int64),
                              face_ops.vectors(found))
    log.info("case %d: photo %d, %d faces indexed", case_id, photo_id,
             len(face_ids) if active else 0)
    return CasePhotoResult(case_id, photo_id, face_ops.feedback(found))


def register_case(
    matcher: Matcher, new: NewCase, photos: Sequence[CasePhotoUpload] = ()
) -> tuple[Case, list[CasePhotoResult]]:
    """A case and its photos (each photo is its own transaction; the case comes first)."""
    case = create_case(matcher, new)
    return case, [add_photo(matcher, case.id, photo) for photo in photos]


def update_case(
    matcher: Matcher, case_id: int, status: CaseStatus | str | None = None,
    public_fields: Sequence[str] | None = None,
) -> Case:
    """Changes status and/or public fields. Found/closed cases leave the index before this
    returns; a case made active again comes back through a rebuild from the store (removed
    face ids cannot be re-added to a FAISS collection before it is rebuilt)."""
    with matcher.case_lock:
        with session_scope(matcher.sessions) as session:
            before = session.get(Case, case_id)
            if before is None:
                raise CaseNotFound(f"no case {case_id}")
            was_active = before.status is CaseStatus.ACTIVE
            if public_fields is not None:
                set_public_fields(session, case_id, public_fields)
            if status is not None:
                set_case_status(session, case_id, status)
        with matcher.sessions() as session:
            case = get_case(session, case_id)
        now_active = case.status is CaseStatus.ACTIVE
        if was_active and not now_active:
            removed = matcher.index.remove_owner(case_id)
            log.info("case %d is %s: %d faces left the index", case_id, case.status.value,
                     removed)
        elif now_active and not was_active:
            matcher.rebuild_index()
    return case


def read_case(matcher: Matcher, case_id: int) -> Case:
    """The case with its photos and their faces loaded."""
    with matcher.sessions() as session:
        return get_case(session, case_id)
