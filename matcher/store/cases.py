"""Cases and their photos: register, read, list, edit, change status, add and remove photos.

The functions add and flush but never commit: the caller owns the transaction
(`session_scope`, or `photo_transaction` when a photo file goes with the rows).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from matcher.store.checks import check_position
from matcher.store.errors import CaseNotFound, InvalidRecord, NotFound
from matcher.store.faces import NewFace, face_row
from matcher.store.models import Case, CasePhoto
from matcher.store.photos import StoredPhoto
from matcher.store.vectors import matchable_case
from matcher.vocabulary import PUBLIC_CASE_FIELDS, CaseStatus, Category, Sex

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewCase:
    category: Category | str
    name: str
    missing_since: dt.date
    sex: Sex | str = Sex.UNKNOWN
    date_of_birth: dt.date | None = None
    age_when_missing: float | None = None
    last_seen_place: str | None = None
    last_seen_lat: float | None = None
    last_seen_lon: float | None = None
    last_seen_at: dt.datetime | None = None
    description: str = ""
    public_fields: Sequence[str] = ()


def _public_fields(fields: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(fields))
    unknown = set(chosen) - PUBLIC_CASE_FIELDS
    if unknown:
        raise InvalidRecord(f"unknown public fields: {sorted(unknown)}")
    return chosen


def create_case(session: Session, new: NewCase) -> Case:
    if new.date_of_birth is None and new.age_when_missing is None:
        raise InvalidRecord("a case needs a date of birth or the age when missing")
    check_position(new.last_seen_lat, new.last_seen_lon)
    case = Case(
        category=Category(new.category), name=new.name, sex=Sex(new.sex),
        date_of_birth=new.date_of_birth, age_when_missing=new.age_when_missing,
        missing_since=new.missing_since, last_seen_place=new.last_seen_place,
        last_seen_lat=new.last_seen_lat, last_seen_lon=new.last_seen_lon,
        last_seen_at=new.last_seen_at, description=new.description, status=CaseStatus.ACTIVE,
        public_fields=_public_fields(new.public_fields),
    )
    session.add(case)
    session.flush()
    log.info("created case %d (%s)", case.id, case.category.value)
    return case


def case_status(session: Session, case_id: int) -> CaseStatus | None:
    """The case's status; None when there is no such case."""
    return session.scalar(select(Case.status).where(Case.id == case_id))


def get_case(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id, options=[selectinload(Case.photos).selectinload(
        CasePhoto.faces)])
    if case is None:
        raise CaseNotFound(f"no case {case_id}")
    return case


def list_cases(
    session: Session, status: CaseStatus | str | None = None,
    category: Category | str | None = None, limit: int = 100, after_id: int = 0,
    matchable_by: tuple[str, bool] | None = None,
) -> list[Case]:
    """Cases by id, `limit` at a time after `after_id` (keyset pagination). `matchable_by`
    (model id, wanted) keeps the cases a sighting can (True) or cannot (False) find under
    that model (see `matchable_case`)."""
    query = select(Case).where(Case.id > after_id).order_by(Case.id).limit(limit)
    if status is not None:
        query = query.where(Case.status == CaseStatus(status))
    if category is not None:
        query = query.where(Case.category == Category(category))
    if matchable_by is not None:
        model_id, wanted = matchable_by
        query = query.where(matchable_case(model_id) if wanted else ~matchable_case(model_id))
    return list(session.scalars(query))


def set_case_status(session: Session, case_id: int, status: CaseStatus | str) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise CaseNotFound(f"no case {case_id}")
    case.status = CaseStatus(status)
    session.flush()
    log.info("case %d is now %s", case.id, case.status.value)
    return case


def set_public_fields(session: Session, case_id: int, fields: Iterable[str]) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise CaseNotFound(f"no case {case_id}")
    case.public_fields = _public_fields(fields)
    session.flush()
    return case


# What a case manager may change after registration (status and public fields have their own
# functions: they move the case in and out of matching and of the public feed).
EDITABLE_CASE_FIELDS = frozenset({
    "category", "name", "sex", "date_of_birth", "age_when_missing", "missing_since",
    "last_seen_place", "last_seen_lat", "last_seen_lon", "last_seen_at", "description",
})


def edit_case(session: Session, case_id: int, changes: dict[str, Any]) -> Case:
    """Sets the given fields, checked together (a latitude needs its longitude, a case needs a
    date of birth or an age); raises InvalidRecord and changes nothing otherwise."""
    unknown = set(changes) - EDITABLE_CASE_FIELDS
    if unknown:
        raise InvalidRecord(f"these case fields cannot be edited: {sorted(unknown)}")
    case = session.get(Case, case_id)
    if case is None:
        raise CaseNotFound(f"no case {case_id}")
    merged = {name: changes.get(name, getattr(case, name)) for name in EDITABLE_CASE_FIELDS}
    if merged["date_of_birth"] is None and merged["age_when_missing"] is None:
        raise InvalidRecord("a case needs a date of birth or the age when missing")
    if not merged["name"]:
        raise InvalidRecord("a case needs a name")
    check_position(merged["last_seen_lat"], merged["last_seen_lon"])
    merged["category"], merged["sex"] = Category(merged["category"]), Sex(merged["sex"])
    for name in changes:
        setattr(case, name, merged[name])
    session.flush()
    log.info("case %d: edited %s", case_id, sorted(changes))
    return case


def delete_case(session: Session, case_id: int) -> None:
    """Deletes a case with its photos' rows, faces and candidates (files go to the sweep)."""
    case = session.get(Case, case_id)
    if case is None:
        raise CaseNotFound(f"no case {case_id}")
    session.delete(case)
    session.flush()
    log.info("deleted case %d", case_id)


def case_categories(session: Session, case_ids: Iterable[int]) -> dict[int, Category]:
    wanted = set(case_ids)
    if not wanted:
        return {}
    return {int(case): Category(category) for case, category in session.execute(
        select(Case.id, Case.category).where(Case.id.in_(wanted)))}


def add_case_photo(
    session: Session, case_id: int, photo: StoredPhoto, faces: Sequence[NewFace] = (),
    taken_on: dt.date | None = None, age_at_photo: float | None = None,
) -> CasePhoto:
    if session.get(Case, case_id) is None:
        raise CaseNotFound(f"no case {case_id}")
    row = CasePhoto(
        case_id=case_id, sha256=photo.sha256, path=photo.path, width=photo.width,
        height=photo.height, taken_on=taken_on, age_at_photo=age_at_photo,
        faces=[face_row(face) for face in faces],
    )
    session.add(row)
    session.flush()
    log.info("case %d: photo %d with %d faces", case_id, row.id, len(faces))
    return row


def get_case_photo(session: Session, case_id: int, photo_id: int) -> CasePhoto:
    """The case's photo (NotFound when the photo is another case's: ids are not secrets)."""
    photo = session.get(CasePhoto, photo_id)
    if photo is None or photo.case_id != case_id:
        raise NotFound(f"case {case_id} has no photo {photo_id}")
    return photo


def case_photo_with(session: Session, case_id: int, sha256: str) -> int | None:
    """The id of the case's photo with these pixels (its stored file's SHA-256), or None."""
    return session.scalar(select(CasePhoto.id).where(
        CasePhoto.case_id == case_id, CasePhoto.sha256 == sha256))


def delete_case_photo(session: Session, case_id: int, photo_id: int) -> tuple[list[int], str]:
    """Deletes a case photo with its faces and the candidates they produced (decisions stay:
    they key on sighting face and case). Returns the removed face ids and the photo's sha256
    (its file may be shared; the caller removes it once no row references it)."""
    photo = session.get(CasePhoto, photo_id, options=[selectinload(CasePhoto.faces)])
    if photo is None or photo.case_id != case_id:
        raise NotFound(f"case {case_id} has no photo {photo_id}")
    face_ids, sha256 = [face.id for face in photo.faces], photo.sha256
    session.delete(photo)
    session.flush()
    log.info("case %d: deleted photo %d with %d faces", case_id, photo_id, len(face_ids))
    return face_ids, sha256
