"""The investigators' review queue: which candidates to list, in which order, a page at a time.

The queue is SQL: filters (status, threshold in force, case, category, a circle on the map, a
time range), the order (most likely first: `Likelihood`) and keyset paging all run in the
database, so a page costs the same with ten candidates or ten million. Decisions are in
matcher/store/decisions.py, the candidates themselves in matcher/store/candidates.py.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, func, or_, select, tuple_
from sqlalchemy.orm import Session, aliased

from matcher.store.errors import CandidateNotFound, InvalidRecord
from matcher.store.models import Candidate, Case, CasePhoto, Face, Sighting
from matcher.vocabulary import MAX_ID, CandidateStatus, Category

EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)

TimeField = Literal["seen", "taken", "uploaded"]
# "distance": most likely first (the name is older than the order: `Likelihood`); "recent":
# newest sighting first; "missing": the case missing longest first (issue 21).
Order = Literal["distance", "recent", "missing"]


@dataclass(frozen=True)
class GeoCircle:
    """Sightings taken within `radius_km` (great-circle distance) of a point."""

    lat: float
    lon: float
    radius_km: float

    def __post_init__(self) -> None:
        if not (-90 <= self.lat <= 90 and -180 <= self.lon <= 180):
            raise InvalidRecord(f"not a position: {self.lat}, {self.lon}")
        if not self.radius_km > 0:
            raise InvalidRecord("the radius must be positive")

    @classmethod
    def maybe(cls, lat: float | None, lon: float | None,
              radius_km: float | None) -> GeoCircle | None:
        given = [v is not None for v in (lat, lon, radius_km)]
        if not any(given):
            return None
        if lat is None or lon is None or radius_km is None:
            raise InvalidRecord("lat, lon and radius_km go together")
        return cls(lat, lon, radius_km)


@dataclass(frozen=True)
class ReviewQuery:
    """Which candidates to list. The defaults are the queue: pending, under the threshold that
    was in force when each was found, most likely first (`Likelihood`)."""

    statuses: tuple[CandidateStatus, ...] = (CandidateStatus.PENDING,)
    under_threshold: bool = True
    case_id: int | None = None
    category: Category | None = None
    near: GeoCircle | None = None
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # exclusive
    time_field: TimeField = "seen"  # "seen": taken_at, or uploaded_at when unknown
    order: Order = "distance"  # most likely first (see Order for the others)
    # Only the candidates of sightings that answered the case's alert (issue 22); those are
    # listed whether under the threshold or not: the reporter's word is reason enough to look.
    reported_for_alert: bool = False
    # Sightings within this many km of the case's last-seen point (both known).
    max_km_from_last_seen: float | None = None


@dataclass(frozen=True)
class Likelihood:
    """A candidate's place in the queue's default order, most likely first: by the calibrated
    false match rate of its distance (per compared face, the same scale for every model, so
    the candidates of two models before and after a reindex interleave rightly), then by
    distance / threshold in force, then by id. Candidates without a rate (no calibration of
    their model) come after every rated one, by distance / threshold then id."""

    false_match_rate: float | None
    distance_ratio: float

    def sort_key(self, candidate_id: int) -> tuple[bool, float, float, int]:
        """The order as a Python key (what the SQL of `review_rows` returns)."""
        rate = self.false_match_rate
        return (rate is None, rate or 0.0, self.distance_ratio, candidate_id)


# "d" (a raw distance) was the kind before 0008.
_KINDS = {"distance": "l", "recent": "t", "missing": "m"}


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended: its last row's sort key and candidate id (opaque text).
    A cursor of the raw-distance order (before revision 0008) is refused as any cursor of
    another listing (InvalidRecord): its key means nothing in the order of today."""

    key: Likelihood | dt.datetime | dt.date  # a date: the case's missing_since
    candidate_id: int

    def encode(self) -> str:
        if isinstance(self.key, Likelihood):
            rate = self.key.false_match_rate
            key = f"{'' if rate is None else repr(rate)}|{self.key.distance_ratio!r}"
        else:
            key = self.key.isoformat()
        kind = ("l" if isinstance(self.key, Likelihood)
                else "t" if isinstance(self.key, dt.datetime) else "m")
        text = f"{kind}|{key}|{self.candidate_id}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, order: Order) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            kind, *keys, candidate_id = raw.split("|")
            if kind != _KINDS[order] or len(keys) != (2 if kind == "l" else 1):
                raise ValueError(kind)
            value: Likelihood | dt.datetime | dt.date
            if kind == "l":
                value = Likelihood(float(keys[0]) if keys[0] else None, float(keys[1]))
                if not all(math.isfinite(v) for v in (value.false_match_rate or 0.0,
                                                      value.distance_ratio)):
                    raise ValueError(raw)
            elif kind == "m":
                value = dt.date.fromisoformat(keys[0])
            else:
                value = dt.datetime.fromisoformat(keys[0])
            candidate = int(candidate_id)
            # Ids are 64-bit in the store: a larger one overflowed the driver (a 500).
            if not 0 <= candidate <= MAX_ID:
                raise ValueError(raw)
            return cls(value, candidate)
        except (ValueError, UnicodeDecodeError, binascii.Error) as error:
            raise InvalidRecord(f"not a cursor of this listing: {text!r}") from error


@dataclass(frozen=True)
class ReviewRow:
    """A candidate with everything a reviewer sees about it, loaded in one query."""

    candidate: Candidate
    sighting_face: Face
    sighting: Sighting
    case: Case
    case_face: Face
    case_photo: CasePhoto | None

    @property
    def seen_at(self) -> dt.datetime:
        return self.sighting.taken_at or self.sighting.uploaded_at


def _time(field: TimeField) -> Any:
    return {"seen": func.coalesce(Sighting.taken_at, Sighting.uploaded_at),
            "taken": Sighting.taken_at, "uploaded": Sighting.uploaded_at}[field]


def _within(circle: GeoCircle) -> list[ColumnElement[bool]]:
    """A bounding box (cheap comparisons) then the exact haversine test, all in SQL.

    haversine: d <= r  <=>  a <= sin^2(r / 2R), with a = sin^2(dlat/2) + cos lat0 cos lat
    sin^2(dlon/2); no asin needed. SQLite gets sin and cos from matcher.store.db.
    """
    rad = math.pi / 180
    angle = circle.radius_km / EARTH_RADIUS_KM  # radians of arc
    lat0, lon0 = circle.lat, circle.lon
    conditions: list[ColumnElement[bool]] = [
        Sighting.lat.is_not(None), Sighting.lon.is_not(None),
        Sighting.lat.between(lat0 - angle / rad, lat0 + angle / rad),
    ]
    ratio = math.sin(angle) / max(math.cos(lat0 * rad), 1e-12)
    if angle < math.pi / 2 and ratio < 1:  # else the circle holds a pole: no longitude bound
        dlon = math.asin(ratio) / rad
        lo, hi = lon0 - dlon, lon0 + dlon
        if lo < -180:  # the box crosses the antimeridian
            conditions.append(or_(Sighting.lon >= lo + 360, Sighting.lon <= hi))
        elif hi > 180:
            conditions.append(or_(Sighting.lon >= lo, Sighting.lon <= hi - 360))
        else:
            conditions.append(Sighting.lon.between(lo, hi))
    half_dlat = func.sin((Sighting.lat - lat0) * (rad / 2))
    half_dlon = func.sin((Sighting.lon - lon0) * (rad / 2))
    a = half_dlat * half_dlat + math.cos(lat0 * rad) * func.cos(Sighting.lat * rad) \
        * half_dlon * half_dlon
    conditions.append(a <= math.sin(min(angle / 2, math.pi / 2)) ** 2)
    return conditions


def _near_last_seen(km: float) -> list[ColumnElement[bool]]:
    """The sighting within `km` of its case's last-seen point: the haversine test of
    `_within`, between two rows' columns."""
    if not km > 0:
        raise InvalidRecord("the distance must be positive")
    rad = math.pi / 180
    half_dlat = func.sin((Sighting.lat - Case.last_seen_lat) * (rad / 2))
    half_dlon = func.sin((Sighting.lon - Case.last_seen_lon) * (rad / 2))
    a = half_dlat * half_dlat + func.cos(Case.last_seen_lat * rad) \
        * func.cos(Sighting.lat * rad) * half_dlon * half_dlon
    return [Sighting.lat.is_not(None), Sighting.lon.is_not(None),
            Case.last_seen_lat.is_not(None), Case.last_seen_lon.is_not(None),
            a <= math.sin(min(km / EARTH_RADIUS_KM / 2, math.pi / 2)) ** 2]


def _rows_query() -> Any:
    """Candidate, sighting face, sighting, case, case face and its photo: one row each."""
    sighting_face, case_face = aliased(Face), aliased(Face)
    return (
        select(Candidate, sighting_face, Sighting, Case, case_face, CasePhoto)
        .join(sighting_face, Candidate.sighting_face_id == sighting_face.id)
        .join(Sighting, sighting_face.sighting_id == Sighting.id)
        .join(Case, Candidate.case_id == Case.id)
        .join(case_face, Candidate.case_face_id == case_face.id)
        .outerjoin(CasePhoto, case_face.case_photo_id == CasePhoto.id)
    )


def review_rows(
    session: Session, query: ReviewQuery, limit: int = 50, after: Cursor | None = None
) -> list[ReviewRow]:
    """One page of candidates in the query's order; pass the last row's cursor for the next."""
    if limit < 1:
        raise InvalidRecord("limit must be at least 1")
    conditions: list[ColumnElement[bool]] = [
        Candidate.status.in_([CandidateStatus(s) for s in query.statuses])]
    if query.reported_for_alert:
        conditions.append(Candidate.reported_for_alert.is_(True))
    if query.max_km_from_last_seen is not None:
        conditions.extend(_near_last_seen(query.max_km_from_last_seen))
    if query.under_threshold and not query.reported_for_alert:
        # The same test on the ratio (d <= t gives d / t <= 1 exactly), which the queue's index
        # holds: the walk of the unrated candidates stops there.
        conditions += [Candidate.distance <= Candidate.threshold, Candidate.distance_ratio <= 1]
    if query.case_id is not None:
        conditions.append(Candidate.case_id == query.case_id)
    if query.category is not None:
        conditions.append(Case.category == Category(query.category))
    if query.near is not None:
        conditions.extend(_within(query.near))
    when = _time(query.time_field)
    if query.since is not None:
        conditions.append(when >= query.since)
    if query.until is not None:
        conditions.append(when < query.until)
    if query.order == "distance":
        return _most_likely_first(session, conditions, limit, after)
    if query.order == "missing":  # the case missing longest first, then by candidate id
        if after is not None:
            conditions.append(tuple_(Case.missing_since, Candidate.id) > tuple_(
                after.key, after.candidate_id))
        return [ReviewRow(*row) for row in session.execute(
            _rows_query().where(*conditions).order_by(Case.missing_since, Candidate.id)
            .limit(limit))]
    seen = _time("seen")
    if after is not None:
        conditions.append(or_(seen < after.key, and_(
            seen == after.key, Candidate.id < after.candidate_id)))
    rows = session.execute(_rows_query().where(*conditions)
                           .order_by(seen.desc(), Candidate.id.desc()).limit(limit))
    return [ReviewRow(*row) for row in rows]


def _most_likely_first(session: Session, conditions: list[ColumnElement[bool]], limit: int,
                       after: Cursor | None) -> list[ReviewRow]:
    """The `Likelihood` order: the rated candidates, then (when the page is not full yet) the
    unrated ones. Two queries, not one ORDER BY with NULLS LAST: each walks the queue's index
    (status, false_match_rate, distance_ratio, id) in order on both databases, where SQLite,
    which keeps NULLs first in an index, would read and sort the whole queue for one."""
    key = after.key if after is not None else None
    if key is not None and not isinstance(key, Likelihood):
        raise InvalidRecord("not a cursor of this listing")
    last = after.candidate_id if after is not None else 0
    rate, ratio, ident = (Candidate.false_match_rate, Candidate.distance_ratio, Candidate.id)
    parts: list[list[ColumnElement[bool]]] = []
    if key is None or key.false_match_rate is not None:
        rated: list[ColumnElement[bool]] = [rate.is_not(None)]
        if key is not None:
            # A row value: both databases seek into the index at the cursor.
            rated.append(tuple_(rate, ratio, ident) > tuple_(
                key.false_match_rate, key.distance_ratio, last))
        parts.append(rated)
    unrated: list[ColumnElement[bool]] = [rate.is_(None)]
    if key is not None and key.false_match_rate is None:
        unrated.append(tuple_(ratio, ident) > tuple_(key.distance_ratio, last))
    parts.append(unrated)
    found: list[ReviewRow] = []
    for part in parts:
        rows = session.execute(_rows_query().where(*conditions, *part)
                               .order_by(rate, ratio, ident).limit(limit - len(found)))
        found += [ReviewRow(*row) for row in rows]
        if len(found) >= limit:
            break
    return found


def review_row(session: Session, candidate_id: int) -> ReviewRow:
    found = session.execute(_rows_query().where(Candidate.id == candidate_id)).one_or_none()
    if found is None:
        raise CandidateNotFound(f"no candidate {candidate_id}")
    return ReviewRow(*found)


def likelihood_of(candidate: Candidate) -> Likelihood:
    return Likelihood(candidate.false_match_rate, float(candidate.distance_ratio))


def cursor_after(row: ReviewRow, order: Order) -> Cursor:
    if order == "distance":
        return Cursor(likelihood_of(row.candidate), row.candidate.id)
    if order == "missing":
        return Cursor(row.case.missing_since, row.candidate.id)
    return Cursor(row.seen_at, row.candidate.id)
