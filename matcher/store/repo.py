"""Plain functions over the store, used by the service: cases, photos, sightings, candidates.

They add and flush but never commit: the caller owns the transaction (`session_scope`, or
`photo_transaction` when a photo file goes with the rows).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from matcher.store.errors import (
    CandidateNotFound,
    CaseNotFound,
    InvalidRecord,
    NotFound,
    SightingNotFound,
)
from matcher.store.models import (
    Candidate,
    Case,
    CasePhoto,
    Decision,
    Face,
    FaceVector,
    Sighting,
    descriptor_to_bytes,
    descriptors_from_bytes,
    utcnow,
)
from matcher.store.photos import StoredPhoto
from matcher.store.vectors import matchable_case
from matcher.vocabulary import (
    PUBLIC_CASE_FIELDS,
    CandidateStatus,
    CaseStatus,
    Category,
    Sex,
    Verdict,
)

log = logging.getLogger(__name__)

# (face ids, case ids, vectors): the batches FaceIndex.rebuild reads.
FaceRowBatch = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]


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


@dataclass(frozen=True)
class NewFace:
    """A face as the pipeline reports it (the service converts matcher.embed's Face)."""

    box: tuple[float, float, float, float]
    landmarks: ArrayLike  # (5, 2)
    score: float
    size_px: float
    sharpness: float
    vector: ArrayLike  # (dim,) float
    model_id: str
    unfit_reasons: Sequence[str] = ()
    detector: str | None = None  # the detector's name
    keypoints: ArrayLike | None = None  # (5, 2), the detector's own points, if it has them


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


@dataclass(frozen=True)
class NewCandidate:
    sighting_face_id: int
    case_id: int
    case_face_id: int
    distance: float
    rank: int
    model_id: str
    threshold: float
    # The calibrated false match rate per compared face of the distance, on the scale of every
    # model (None without a calibration of the model): what the review queue orders by.
    false_match_rate: float | None = None
    reported_for_alert: bool = False  # the sighting answered this case's alert


# --- cases -----------------------------------------------------------------------------------


def _public_fields(fields: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(fields))
    unknown = set(chosen) - PUBLIC_CASE_FIELDS
    if unknown:
        raise InvalidRecord(f"unknown public fields: {sorted(unknown)}")
    return chosen


def _lat_lon(lat: float | None, lon: float | None) -> None:
    if (lat is None) != (lon is None):
        raise InvalidRecord("latitude and longitude go together")
    if lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidRecord(f"not a position: {lat}, {lon}")


def create_case(session: Session, new: NewCase) -> Case:
    if new.date_of_birth is None and new.age_when_missing is None:
        raise InvalidRecord("a case needs a date of birth or the age when missing")
    _lat_lon(new.last_seen_lat, new.last_seen_lon)
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
    _lat_lon(merged["last_seen_lat"], merged["last_seen_lon"])
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


# --- faces and photos ------------------------------------------------------------------------


def _points(name: str, points: ArrayLike) -> list[list[float]]:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise InvalidRecord(f"{name} must be (n, 2) points, got shape {array.shape}")
    return array.tolist()


def _face_row(face: NewFace) -> Face:
    descriptor, dim = descriptor_to_bytes(face.vector)
    if len(face.box) != 4:
        raise InvalidRecord("a box is (left, top, right, bottom)")
    return Face(
        box=[float(v) for v in face.box], landmarks=_points("landmarks", face.landmarks),
        score=float(face.score), size_px=float(face.size_px), sharpness=float(face.sharpness),
        unfit_reasons=list(face.unfit_reasons), fit=not face.unfit_reasons,
        detector=face.detector,
        keypoints=None if face.keypoints is None else _points("keypoints", face.keypoints),
        vectors=[FaceVector(model_id=face.model_id, dim=dim, descriptor=descriptor)],
    )


def add_case_photo(
    session: Session, case_id: int, photo: StoredPhoto, faces: Sequence[NewFace] = (),
    taken_on: dt.date | None = None, age_at_photo: float | None = None,
) -> CasePhoto:
    if session.get(Case, case_id) is None:
        raise CaseNotFound(f"no case {case_id}")
    row = CasePhoto(
        case_id=case_id, sha256=photo.sha256, path=photo.path, width=photo.width,
        height=photo.height, taken_on=taken_on, age_at_photo=age_at_photo,
        faces=[_face_row(face) for face in faces],
    )
    session.add(row)
    session.flush()
    log.info("case %d: photo %d with %d faces", case_id, row.id, len(faces))
    return row


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


def create_sighting(
    session: Session, new: NewSighting, photo: StoredPhoto, faces: Sequence[NewFace] = ()
) -> Sighting:
    _lat_lon(new.lat, new.lon)
    row = Sighting(
        uploaded_at=new.uploaded_at or utcnow(), taken_at=new.taken_at, lat=new.lat, lon=new.lon,
        app=new.app, api_key_id=new.api_key_id, reporter_contact=new.reporter_contact,
        note=new.note, sha256=photo.sha256, path=photo.path, width=photo.width, height=photo.height,
        alert_case_id=new.alert_case_id,
        faces=[_face_row(face) for face in faces],
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


def get_faces(session: Session, face_ids: Iterable[int]) -> list[Face]:
    ids = list(face_ids)
    return list(session.scalars(select(Face).where(Face.id.in_(ids)).order_by(Face.id)))


# --- candidates ------------------------------------------------------------------------------


def add_candidates(session: Session, candidates: Sequence[NewCandidate]) -> list[Candidate]:
    rows = [
        Candidate(
            sighting_face_id=c.sighting_face_id, case_id=c.case_id, case_face_id=c.case_face_id,
            distance=float(c.distance), rank=int(c.rank), model_id=c.model_id,
            threshold=float(c.threshold), status=CandidateStatus.PENDING,
            false_match_rate=_rate(c.false_match_rate), reported_for_alert=c.reported_for_alert,
        )
        for c in candidates
    ]
    session.add_all(rows)
    session.flush()
    return rows


def _rate(value: float | None) -> float | None:
    """A false match rate, or None; a NaN or a number outside [0, 1] would misplace the
    candidate in the queue for good."""
    if value is None:
        return None
    if not 0.0 <= float(value) <= 1.0:  # NaN fails too
        raise InvalidRecord(f"not a false match rate: {value}")
    return float(value)


def matchable(session: Session, candidates: Sequence[NewCandidate]) -> list[NewCandidate]:
    """The candidates still worth an investigator's time, ranks renumbered per face.

    Drops cases that are no longer active (closed while the search ran) and pairs of sighting
    face and case already settled by an investigator, whatever model found them: the latest
    decision on the pair is `not_match` (look-alikes and siblings would otherwise come back at
    every re-match) or `match` (its confirmed candidate stands).
    """
    if not candidates:
        return []
    case_ids = {c.case_id for c in candidates}
    active = set(session.scalars(select(Case.id).where(
        Case.id.in_(case_ids), Case.status == CaseStatus.ACTIVE)))
    face_ids = {c.sighting_face_id for c in candidates}
    latest = (
        select(func.max(Decision.id))
        .where(Decision.sighting_face_id.in_(face_ids), Decision.case_id.in_(case_ids))
        .group_by(Decision.sighting_face_id, Decision.case_id)
    )
    settled = {(int(f), int(c)) for f, c in session.execute(
        select(Decision.sighting_face_id, Decision.case_id).where(
            Decision.id.in_(latest), Decision.verdict.in_([Verdict.NOT_MATCH, Verdict.MATCH])))}
    kept: list[NewCandidate] = []
    ranks: dict[int, int] = {}
    for c in sorted(candidates, key=lambda c: (c.sighting_face_id, c.rank)):
        if c.case_id in active and (c.sighting_face_id, c.case_id) not in settled:
            ranks[c.sighting_face_id] = rank = ranks.get(c.sighting_face_id, 0) + 1
            kept.append(replace(c, rank=rank))
    return kept


def list_candidates(
    session: Session, status: CandidateStatus | str | None = None, case_id: int | None = None,
    sighting_id: int | None = None, limit: int = 100, after_id: int = 0,
) -> list[Candidate]:
    query = select(Candidate).where(Candidate.id > after_id).order_by(Candidate.id).limit(limit)
    if status is not None:
        query = query.where(Candidate.status == CandidateStatus(status))
    if case_id is not None:
        query = query.where(Candidate.case_id == case_id)
    if sighting_id is not None:
        query = query.join(Face, Face.id == Candidate.sighting_face_id).where(
            Face.sighting_id == sighting_id)
    return list(session.scalars(query))


def set_candidate_status(
    session: Session, candidate_id: int, status: CandidateStatus | str,
    reviewed_by: str | None = None,
) -> Candidate:
    candidate = session.get(Candidate, candidate_id)
    if candidate is None:
        raise CandidateNotFound(f"no candidate {candidate_id}")
    candidate.status = CandidateStatus(status)
    pending = candidate.status is CandidateStatus.PENDING
    candidate.reviewed_at = None if pending else utcnow()
    candidate.reviewed_by = None if pending else reviewed_by
    session.flush()
    log.info("candidate %d (case %d) is now %s", candidate.id, candidate.case_id,
             candidate.status.value)
    return candidate


# --- the source of the face index ------------------------------------------------------------


def _active_case_faces(model_id: str) -> Any:
    return (
        select(Face.id, CasePhoto.case_id.label("owner"), FaceVector.descriptor, FaceVector.dim)
        .join(FaceVector, FaceVector.face_id == Face.id)
        .join(CasePhoto, Face.case_photo_id == CasePhoto.id)
        .join(Case, CasePhoto.case_id == Case.id)
        .where(FaceVector.model_id == model_id, Case.status == CaseStatus.ACTIVE)
    )


def active_case_face_rows(
    session: Session, model_id: str, batch_size: int = 10_000
) -> Iterator[FaceRowBatch]:
    """(face ids, case ids, vectors) of every face of every active case, by face id, in batches.

    The store is the truth: this is what FaceIndex.rebuild reads at start-up. Faces of other
    models and of found or closed cases are left out.
    """
    return face_row_batches(session, _active_case_faces(model_id), model_id, batch_size)


def active_case_faces_by_category(session: Session, model_id: str) -> dict[str, int]:
    """How many faces of active cases the model has embedded, by case category."""
    faces = _active_case_faces(model_id).add_columns(Case.category).subquery()
    rows = session.execute(
        select(faces.c.category, func.count()).group_by(faces.c.category))
    return {Category(category).value: int(count) for category, count in rows}


def case_face_rows(
    session: Session, case_id: int, model_id: str, batch_size: int = 10_000
) -> Iterator[FaceRowBatch]:
    """`active_case_face_rows` of one case (nothing while the case is not active)."""
    query = _active_case_faces(model_id).where(CasePhoto.case_id == case_id)
    return face_row_batches(session, query, model_id, batch_size)


def face_row_batches(
    session: Session, query: Any, model_id: str, batch_size: int = 10_000
) -> Iterator[FaceRowBatch]:
    """(face ids, owner ids, vectors) batches of a query selecting Face.id, an `owner` column,
    FaceVector.descriptor and FaceVector.dim; keyset pagination on the face id keeps memory
    flat whatever the collection's size."""
    after = 0
    while True:
        rows = session.execute(query.where(Face.id > after).order_by(Face.id).limit(batch_size)
                               ).all()
        if not rows:
            return
        dims = {row.dim for row in rows}
        if len(dims) != 1:
            raise InvalidRecord(f"faces of {model_id} have several dimensions: {sorted(dims)}")
        ids = np.fromiter((row.id for row in rows), dtype=np.int64, count=len(rows))
        owners = np.fromiter((row.owner for row in rows), dtype=np.int64, count=len(rows))
        yield ids, owners, descriptors_from_bytes([row.descriptor for row in rows], dims.pop())
        after = int(ids[-1])


# Pairs hashed per round trip: keeps memory flat (1 MiB of pairs) whatever the collection's size.
DIGEST_BATCH = 65_536


@dataclass(frozen=True)
class FaceSetSummary:
    """Fingerprint of the faces an index should hold (a model's active case faces, or its fit
    sighting faces): how many, and the SHA-256 of every (face id, owner id) pair in face id
    order. An index built from any other set is stale, whatever ids were reused or summed."""

    count: int
    digest: str  # hex


class FaceSetDigest:
    """Builds a `FaceSetSummary` from (face ids, owner ids) batches given in ascending face id
    order, as little-endian int64 pairs: the store's rows and an index's arrays hash alike,
    however they are split into batches."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._count = 0

    def update(self, ids: ArrayLike, owners: ArrayLike) -> None:
        pairs = np.column_stack((np.asarray(ids, dtype="<i8"), np.asarray(owners, dtype="<i8")))
        self._hash.update(np.ascontiguousarray(pairs, dtype="<i8").tobytes())
        self._count += len(pairs)

    def summary(self) -> FaceSetSummary:
        return FaceSetSummary(self._count, self._hash.hexdigest())


def active_case_face_summary(session: Session, model_id: str,
                             batch_size: int = DIGEST_BATCH) -> FaceSetSummary:
    """The fingerprint of what `active_case_face_rows` reads: is a saved index current?"""
    return face_set_summary(session, _active_case_faces(model_id), batch_size)


def face_set_summary(session: Session, query: Any,
                     batch_size: int = DIGEST_BATCH) -> FaceSetSummary:
    """The fingerprint of the faces a query for `face_row_batches` selects (`face_set_pairs`
    hashed in batches)."""
    digest = FaceSetDigest()
    for ids, owners in face_set_pairs(session, query, batch_size):
        digest.update(ids, owners)
    return digest.summary()


def face_set_pairs(session: Session, query: Any, batch_size: int = DIGEST_BATCH
                   ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """The (face ids, owner ids) pairs a query for `face_row_batches` selects, in face id
    order, a batch at a time, streamed in one query (a server-side cursor on PostgreSQL).
    Ordered by the vector's face id, which the join makes the face's: SQLite then reads them in
    the order of the face_vectors index instead of sorting them (2x faster)."""
    columns = query.selected_columns
    pairs = query.with_only_columns(columns.id, columns.owner).order_by(FaceVector.face_id)
    connection = session.connection()  # Core rows: half the ORM execute's cost per row
    if connection.dialect.name == "postgresql":
        # PostgreSQL plans a cursor for its first 10% of rows (nested loops over every face);
        # this one reads them all (1M faces: 5.3 s instead of 7.3 before ANALYZE).
        connection.exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1.0")
    result = connection.execute(pairs, execution_options={"yield_per": batch_size})
    for rows in result.partitions():
        flat = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=2 * len(rows))
        yield flat[0::2], flat[1::2]


def active_case_face_pairs(session: Session, model_id: str
                           ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """`face_set_pairs` of what `active_case_face_rows` reads: what the case index should hold."""
    return face_set_pairs(session, _active_case_faces(model_id))
