"""Sightings: store one with its faces, read one or a page, and the faces and rows the review
reads of them.

The functions add and flush but never commit: the caller owns the transaction
(`photo_transaction`, as the photo file goes with the rows).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from matcher.store.checks import check_position
from matcher.store.errors import SightingNotFound
from matcher.store.faces import NewFace, face_row
from matcher.store.models import Face, FaceVector, Sighting, utcnow
from matcher.store.photos import StoredPhoto

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewSighting:
    app: str
    uploaded_at: dt.datetime | None = None  # now when None
    taken_at: dt.datetime | None = None
    lat: float | None = None
    lon: float | None = None
    api_key_id: int | None = None
    reporter_contact: str | None = field(default=None, repr=False)
    note: str | None = field(default=None, repr=False)  # free text: never logged
    alert_case_id: int | None = None  # the case whose alert the reporter answered


def create_sighting(
    session: Session, new: NewSighting, photo: StoredPhoto, faces: Sequence[NewFace] = ()
) -> Sighting:
    check_position(new.lat, new.lon)
    row = Sighting(
        uploaded_at=new.uploaded_at or utcnow(), taken_at=new.taken_at, lat=new.lat, lon=new.lon,
        app=new.app, api_key_id=new.api_key_id, reporter_contact=new.reporter_contact,
        note=new.note, sha256=photo.sha256, path=photo.path, width=photo.width, height=photo.height,
        alert_case_id=new.alert_case_id,
        faces=[face_row(face) for face in faces],
    )
    session.add(row)
    session.flush()
    log.info("sighting %d from %s with %d faces", row.id, new.app, len(faces))
    return row


def get_sighting(session: Session, sighting_id: int) -> Sighting:
    sighting = session.get(Sighting, sighting_id, options=[selectinload(Sighting.faces)])
    if sighting is None:
        raise SightingNotFound(f"no sighting {sighting_id}")
    return sighting


def list_sightings(
    session: Session, limit: int = 100, before_id: int | None = None
) -> list[Sighting]:
    """Newest first, with faces; keyset pagination on the id."""
    query = select(Sighting).options(selectinload(Sighting.faces)).order_by(
        Sighting.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(Sighting.id < before_id)
    return list(session.scalars(query))


def fit_sighting_faces(session: Session, sighting_id: int, model_id: str) -> list[Face]:
    """The faces of a sighting that are in (or would be in) the sighting index."""
    return list(session.scalars(
        select(Face).join(FaceVector, FaceVector.face_id == Face.id).where(
            Face.sighting_id == sighting_id, FaceVector.model_id == model_id, Face.fit)
        .order_by(Face.id)))


def sightings_by_id(session: Session, ids: Iterable[int]) -> dict[int, Sighting]:
    wanted = set(ids)
    if not wanted:
        return {}
    return {row.id: row for row in session.scalars(select(Sighting).where(
        Sighting.id.in_(wanted)))}
