"""What the service hands out instead of ORM rows: frozen dataclasses, built from the rows
while their session is open.

Why: a row outlives its session only half-alive (a relationship not loaded yet fails, or
lazy-loads behind the caller's back), and it ties every caller to SQLAlchemy and to the
tables. A record holds the fields its callers read, fixed when it was built, so the api never
imports the store and a table can change behind the service. Each record leaves out what no
caller may see: file paths, key hashes, a reporter's contact, descriptors.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from matcher.service.alert_reports import LastSeenGap, last_seen_gap
from matcher.service.repeats import ReportRecord
from matcher.store import ApiKey, AuditEvent, Candidate, Case, CasePhoto, Face, Sighting
from matcher.store.reports import SightingReport
from matcher.vocabulary import CandidateStatus, CaseStatus, Category, Role, Sex


@dataclass(frozen=True)
class FaceRecord:
    """A face found in a case photo or a sighting, and whether it can be matched."""

    id: int
    box: list[float]  # [left, top, right, bottom], photo px
    fit: bool
    unfit_reasons: list[str]

    @classmethod
    def of(cls, row: Face) -> FaceRecord:
        return cls(row.id, list(row.box), row.fit, list(row.unfit_reasons))


@dataclass(frozen=True)
class CasePhotoRecord:
    id: int
    taken_on: dt.date | None
    age_at_photo: float | None
    width: int
    height: int
    faces: list[FaceRecord]

    @classmethod
    def of(cls, row: CasePhoto) -> CasePhotoRecord:
        return cls(row.id, row.taken_on, row.age_at_photo, row.width, row.height,
                   [FaceRecord.of(face) for face in row.faces])


@dataclass(frozen=True)
class CaseRecord:
    """A case's own fields, as a list shows them (its photos are not read)."""

    id: int
    category: Category
    name: str
    sex: Sex
    date_of_birth: dt.date | None
    age_when_missing: float | None  # years
    missing_since: dt.date
    last_seen_place: str | None
    last_seen_lat: float | None
    last_seen_lon: float | None
    last_seen_at: dt.datetime | None
    description: str
    status: CaseStatus
    public_fields: list[str]
    created_at: dt.datetime

    @classmethod
    def of(cls, row: Case) -> CaseRecord:
        return cls(**_case_fields(row))


@dataclass(frozen=True)
class CaseDetail(CaseRecord):
    """A case with its photos and their faces (the rows must have them loaded: `get_case`)."""

    photos: list[CasePhotoRecord]

    @classmethod
    def of(cls, row: Case) -> CaseDetail:
        return cls(**_case_fields(row),
                   photos=[CasePhotoRecord.of(photo) for photo in row.photos])


def _case_fields(row: Case) -> dict[str, Any]:
    """The fields of CaseRecord read from the row (one place for both kinds of case record)."""
    fields = {field.name: getattr(row, field.name) for field in dataclasses.fields(CaseRecord)}
    return {**fields, "public_fields": list(row.public_fields)}


@dataclass(frozen=True)
class SightingRecord:
    """A sighting as investigators see it: the reporter's contact stays in the store."""

    id: int
    uploaded_at: dt.datetime
    taken_at: dt.datetime | None
    lat: float | None
    lon: float | None
    app: str  # the tip app that sent it
    note: str | None  # the reporter's words
    width: int
    height: int
    faces: list[FaceRecord]
    alert_case_id: int | None = None  # the case whose alert the reporter answered
    # Tips that repeat (repeats.py): each upload of this photo, the first included, and the
    # first sighting of its burst group (None: no other shot of the same moment).
    reports: list[ReportRecord] = dataclasses.field(default_factory=list)
    burst_group: int | None = None

    @classmethod
    def of(cls, row: Sighting, reports: Sequence[SightingReport] = ()) -> SightingRecord:
        return cls(row.id, row.uploaded_at, row.taken_at, row.lat, row.lon, row.app, row.note,
                   row.width, row.height, [FaceRecord.of(face) for face in row.faces],
                   row.alert_case_id, [ReportRecord.of(r) for r in reports], row.burst_of)


@dataclass(frozen=True)
class CandidateRecord:
    """A case proposed for a sighting face, with the case's name, status and category and
    the photo of the case face it was matched on."""

    id: int
    sighting_face_id: int
    case_id: int
    case_face_id: int
    case_photo_id: int | None
    case_name: str
    case_status: CaseStatus
    case_category: Category
    distance: float
    rank: int  # 1: the closest case of this sighting face
    model_id: str
    threshold: float  # in force when it was found
    false_match_rate: float | None
    status: CandidateStatus
    reported_for_alert: bool = False  # the sighting answered this case's alert
    # From the case's last-seen point and moment to the sighting (alert_reports.py).
    km_from_last_seen: float | None = None
    hours_since_last_seen: float | None = None

    @classmethod
    def of(cls, row: Candidate, sighting: Sighting | None = None) -> CandidateRecord:
        """The candidate; with its sighting, how far and how long after the case's last
        sighting it was."""
        gap = LastSeenGap(None, None) if sighting is None else last_seen_gap(
            sighting.lat, sighting.lon, sighting.taken_at or sighting.uploaded_at,
            row.case.last_seen_lat, row.case.last_seen_lon, row.case.last_seen_at)
        return cls(row.id, row.sighting_face_id, row.case_id, row.case_face_id,
                   row.case_face.case_photo_id, row.case.name, row.case.status,
                   row.case.category, row.distance, row.rank, row.model_id, row.threshold,
                   row.false_match_rate, row.status, row.reported_for_alert, gap.km, gap.hours)


@dataclass(frozen=True)
class AuditRecord:
    """One event of the audit trail: who read or changed what, when and from where."""

    id: int
    at: dt.datetime
    api_key_id: int | None
    actor: str  # the key's name
    role: str
    action: str
    object_type: str
    object_id: str
    client: str | None
    detail: dict[str, object]

    @classmethod
    def of(cls, row: AuditEvent) -> AuditRecord:
        return cls(row.id, row.at, row.api_key_id, row.actor, row.role, row.action,
                   row.object_type, row.object_id, row.client, dict(row.detail))


@dataclass(frozen=True)
class KeyRecord:
    """An API key without its hash: who holds it, and whether it still opens anything."""

    id: int
    role: Role
    name: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None = None  # to the minute (matcher/service/key_use.py)

    @classmethod
    def of(cls, row: ApiKey) -> KeyRecord:
        return cls(row.id, row.role, row.name, row.created_at, row.revoked_at, row.last_used_at)
