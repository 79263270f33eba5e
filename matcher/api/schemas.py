"""Request and response bodies. Separate Create/Public models: descriptors, file paths and
reporter contacts have no field here, so they cannot leak."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from matcher.store import CandidateStatus, CaseStatus, Category, Role, Sex


class FaceFeedback(BaseModel):
    """What a tip app learns about each face: found, and fit for matching or why not."""

    box: tuple[float, float, float, float]
    fit: bool
    reasons: list[str]


class SightingReceipt(BaseModel):
    id: int
    faces: list[FaceFeedback]


class FaceRecord(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    box: list[float]
    fit: bool
    unfit_reasons: list[str]
    model_id: str


class SightingPublic(BaseModel):
    """A sighting as investigators see it; the reporter's contact stays in the store."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    uploaded_at: dt.datetime
    taken_at: dt.datetime | None
    lat: float | None
    lon: float | None
    app: str
    width: int
    height: int
    faces: list[FaceRecord]


class CaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: Category
    name: str = Field(min_length=1, max_length=200)
    sex: Sex = Sex.UNKNOWN
    date_of_birth: dt.date | None = None
    age_when_missing: float | None = Field(default=None, ge=0, lt=150)
    missing_since: dt.date
    last_seen_place: str | None = None
    last_seen_lat: float | None = Field(default=None, ge=-90, le=90)
    last_seen_lon: float | None = Field(default=None, ge=-180, le=180)
    description: str = ""
    public_fields: list[str] = []


class CaseUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: CaseStatus | None = None
    public_fields: list[str] | None = None


class CasePhotoPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    taken_on: dt.date | None
    age_at_photo: float | None
    width: int
    height: int
    faces: list[FaceRecord]


class CasePhotoReceipt(BaseModel):
    case_id: int
    photo_id: int
    faces: list[FaceFeedback]


class CasePublic(BaseModel):
    """A case as investigators and case managers see it (everything but files)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    category: Category
    name: str
    sex: Sex
    date_of_birth: dt.date | None
    age_when_missing: float | None
    missing_since: dt.date
    last_seen_place: str | None
    last_seen_lat: float | None
    last_seen_lon: float | None
    description: str
    status: CaseStatus
    public_fields: list[str]
    created_at: dt.datetime
    photos: list[CasePhotoPublic] = []


class CandidatePublic(BaseModel):
    id: int
    sighting_face_id: int
    case_id: int
    case_name: str
    case_status: CaseStatus
    case_face_id: int
    case_photo_id: int | None
    distance: float
    rank: int
    model_id: str
    threshold: float
    under_threshold: bool  # distance <= the threshold in force when it was found
    status: CandidateStatus


class AlertPublic(BaseModel):
    case_id: int
    fields: dict[str, object]
    photo_urls: list[str]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    name: str = Field(min_length=1, max_length=200)


class KeyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    role: Role
    name: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class KeyCreated(KeyPublic):
    key: str  # shown once


class Health(BaseModel):
    status: str
    model_id: str
