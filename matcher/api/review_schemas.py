"""Request and response bodies of the review and audit routes (investigators, admins).

Pictures are URLs of the audited picture routes (matcher/api/urls.py), never file paths.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from matcher.api.schemas import InputModel
from matcher.api.urls import sighting_photo_url
from matcher.service.review import Place
from matcher.vocabulary import NOTE_MAX, CandidateStatus, CaseStatus, Category, Verdict


class ReviewSighting(BaseModel):
    """When and where a sighting was made, and its whole photo."""

    id: int
    taken_at: dt.datetime | None
    uploaded_at: dt.datetime
    lat: float | None
    lon: float | None
    photo_url: str
    # The first sighting of its burst group: near-identical shots of one moment share it (the
    # same photo sent again is one sighting); null when it is alone.
    burst_group: int | None = None

    @classmethod
    def of(cls, place: Place) -> ReviewSighting:
        return cls(id=place.sighting_id, taken_at=place.taken_at, uploaded_at=place.uploaded_at,
                   lat=place.lat, lon=place.lon, photo_url=sighting_photo_url(place.sighting_id),
                   burst_group=place.burst_group)


class ReviewCase(BaseModel):
    id: int
    name: str
    category: Category
    status: CaseStatus
    last_seen_place: str | None
    last_seen_lat: float | None
    last_seen_lon: float | None
    missing_since: dt.date
    last_seen_at: dt.datetime | None


class DecisionPublic(BaseModel):
    id: int
    candidate_id: int | None
    sighting_face_id: int
    case_id: int
    verdict: Verdict
    note: str
    reviewer: str  # the deciding key's name
    created_at: dt.datetime


class SightingLinkPublic(BaseModel):
    """Another sighting with a face within the threshold of this one's."""

    sighting: ReviewSighting
    face_id: int  # that sighting's closest face
    face_crop_url: str
    from_face_id: int  # the face of this sighting it is close to
    distance: float


class ReviewEntryPublic(BaseModel):
    """One candidate as a reviewer sees it: both faces, both people, the history."""

    id: int  # the candidate's
    status: CandidateStatus
    distance: float
    rank: int
    model_id: str
    threshold: float  # in force when it was found
    # The share of strangers' faces at least this close, per compared face (calibrated; null
    # without a calibration of the candidate's model): what `sort=likely` orders by.
    false_match_rate: float | None
    created_at: dt.datetime
    reviewed_at: dt.datetime | None
    reviewed_by: str | None
    sighting_face_id: int
    face_crop_url: str  # the sighting face
    case_face_id: int
    case_face_crop_url: str
    case_photo_id: int | None
    case_photo_url: str | None
    sighting: ReviewSighting
    case: ReviewCase
    # Sighting date minus the case photo's (taken_on, else estimated from the age on it).
    age_gap_years: float | None
    decisions: list[DecisionPublic]  # on this case and any face of this sighting, oldest first
    seen_count: int  # other sightings of (likely) the same person
    seen: list[SightingLinkPublic]
    reported_for_alert: bool  # the sighting answered the case's alert ("I saw this child")
    # Great-circle km and hours from the case's last-seen point and moment to the sighting
    # (null where either is unknown).
    km_from_last_seen: float | None
    hours_since_last_seen: float | None


class ReviewPage(BaseModel):
    items: list[ReviewEntryPublic]
    next_cursor: str | None  # pass as `cursor` for the next page; null on the last


class DecisionCreate(InputModel):
    verdict: Verdict
    note: str = Field(default="", max_length=NOTE_MAX)


class DecisionReceipt(BaseModel):
    decision: DecisionPublic
    candidate_status: CandidateStatus
    also_updated: list[int]  # the pair's other open candidate rows (found by other models)


class SightingLinks(BaseModel):
    sighting_id: int
    links: list[SightingLinkPublic]


class AuditEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: dt.datetime
    api_key_id: int | None
    actor: str
    role: str
    action: str
    object_type: str
    object_id: str
    client: str | None
    detail: dict[str, object]


class AuditPage(BaseModel):
    items: list[AuditEventPublic]
    next_after_id: int | None  # pass as `after_id` for the next page; null on the last
