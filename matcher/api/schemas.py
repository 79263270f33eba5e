"""Request and response bodies. Separate Create/Public models: descriptors, file paths and
reporter contacts have no field here, so they cannot leak."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Self

from fastapi import UploadFile
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from matcher.vocabulary import (
    MAX_ID,
    PUBLIC_CASE_FIELDS,
    CandidateStatus,
    CaseStatus,
    Category,
    Role,
    Sex,
)


def _public_fields(names: list[str]) -> list[str]:
    unknown = sorted(set(names) - PUBLIC_CASE_FIELDS)
    if unknown:
        raise ValueError(f"unknown public fields {unknown}; known: {sorted(PUBLIC_CASE_FIELDS)}")
    return names


EARLIEST_DATE = dt.date(1900, 1, 1)


def _plausible(value: dt.date) -> dt.date:
    # Any date from year 1 to 9999 parses, but ages and gaps computed from one far off
    # overflow (a review queue answered 500 for every page holding such a case).
    latest = dt.date.today() + dt.timedelta(days=1)  # "today" somewhere east of here
    if not EARLIEST_DATE <= value <= latest:
        raise ValueError(f"must be between {EARLIEST_DATE} and today")
    return value


# A date in a person's life: not before 1900, not in the future.
LifeDate = Annotated[dt.date, AfterValidator(_plausible)]


def _past_moment(value: dt.datetime) -> dt.datetime:
    # A time without a zone is UTC; the store keeps aware times only. A day of slack for a
    # device whose clock runs ahead, as for dates.
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    latest = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    if not dt.datetime(EARLIEST_DATE.year, 1, 1, tzinfo=dt.UTC) <= aware <= latest:
        raise ValueError(f"must be between {EARLIEST_DATE} and now")
    return aware.astimezone(dt.UTC)


# A moment in a person's life (when they were last seen): UTC if no zone, not in the future.
LifeMoment = Annotated[dt.datetime, AfterValidator(_past_moment)]


class InputModel(BaseModel):
    """A request body: unknown fields are refused, and so is text with a NUL character
    (PostgreSQL cannot store one, and no name or description needs it)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            raise ValueError("must not contain NUL characters")
        return value


class FaceFeedback(BaseModel):
    """What a tip app learns about each face: found, and fit for matching or why not."""

    box: tuple[float, float, float, float]
    fit: bool
    reasons: list[str]


# The forms of the upload routes, read by matcher/api/upload.py `read_form`; their docstrings
# are the OpenAPI descriptions of the request bodies.
class SightingForm(BaseModel):
    """A sighting photo and what the tip app knows of it. A field not listed here, one sent
    twice, text that is not UTF-8 or text with a NUL character is refused (422). The photo's
    part needs no file name."""

    model_config = ConfigDict(extra="forbid")

    photo: UploadFile = Field(description="JPEG, PNG, WebP, GIF, BMP or TIFF")
    taken_at: dt.datetime | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    note: str | None = Field(default=None, max_length=2000)
    reporter_contact: str | None = Field(default=None, max_length=500)
    alert_case_id: int | None = Field(default=None, ge=1, le=MAX_ID, description=(
        "the case of the alert the user answered (\"I saw this child\"): an alert of the feed"))


class PhotoHintPublic(BaseModel):
    """Shown to the sender when no face of the photo is fit for matching (else null)."""

    message: str  # e.g. "no face found: take the photo closer, facing the camera"
    reasons: list[str]  # no_face, or the faces' unfit codes: too_small, too_blurry


class SightingReceipt(BaseModel):
    id: int
    faces: list[FaceFeedback]
    hint: PhotoHintPublic | None = None


class FaceRecord(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    box: list[float]
    fit: bool
    unfit_reasons: list[str]


class ReportPublic(BaseModel):
    """One upload of a sighting's photo (the same photo sent again is one more report); never
    the reporter's contact."""

    model_config = ConfigDict(from_attributes=True)

    uploaded_at: dt.datetime
    taken_at: dt.datetime | None
    lat: float | None
    lon: float | None
    app: str
    note: str | None
    alert_case_id: int | None


class SightingPublic(BaseModel):
    """A sighting as investigators see it; the reporter's contact stays in the store."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    uploaded_at: dt.datetime
    taken_at: dt.datetime | None
    lat: float | None
    lon: float | None
    app: str
    note: str | None
    width: int
    height: int
    faces: list[FaceRecord]
    alert_case_id: int | None  # the case whose alert the reporter answered
    reports: list[ReportPublic]  # every upload of this photo, the first included
    # The first sighting of its burst group (near-identical shots of one moment), null alone.
    burst_group: int | None


class CaseCreate(InputModel):
    category: Category
    name: str = Field(min_length=1, max_length=200)
    sex: Sex = Sex.UNKNOWN
    date_of_birth: LifeDate | None = None
    age_when_missing: float | None = Field(default=None, ge=0, lt=150)
    missing_since: LifeDate
    last_seen_place: str | None = Field(default=None, max_length=2000)
    last_seen_lat: float | None = Field(default=None, ge=-90, le=90)
    last_seen_lon: float | None = Field(default=None, ge=-180, le=180)
    last_seen_at: LifeMoment | None = None
    description: str = Field(default="", max_length=20_000)
    public_fields: list[str] = []

    @field_validator("public_fields")
    @classmethod
    def _known_public_fields(cls, value: list[str]) -> list[str]:
        return _public_fields(value)


class CaseUpdate(InputModel):
    """Only the fields sent change. Status and public fields move the case in and out of
    matching and of the public feed; the rest is description."""

    status: CaseStatus | None = None
    public_fields: list[str] | None = None
    category: Category | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    sex: Sex | None = None
    date_of_birth: LifeDate | None = None
    age_when_missing: float | None = Field(default=None, ge=0, lt=150)
    missing_since: LifeDate | None = None
    last_seen_place: str | None = Field(default=None, max_length=2000)
    last_seen_lat: float | None = Field(default=None, ge=-90, le=90)
    last_seen_lon: float | None = Field(default=None, ge=-180, le=180)
    last_seen_at: LifeMoment | None = None
    description: str | None = Field(default=None, max_length=20_000)

    @field_validator("public_fields")
    @classmethod
    def _known_public_fields(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _public_fields(value)

    @field_validator("category", "name", "sex", "missing_since")
    @classmethod
    def _required(cls, value: object) -> object:
        if value is None:  # sent as null: these have no "unknown"
            raise ValueError("may be changed but not cleared")
        return value


class CasePhotoForm(BaseModel):
    """A photo of the person, when it was taken and their age in it if known. A field not
    listed here, one sent twice, text that is not UTF-8 or text with a NUL character is
    refused (422). The photo's part needs no file name."""

    model_config = ConfigDict(extra="forbid")

    photo: UploadFile
    taken_on: LifeDate | None = None
    age_at_photo: float | None = Field(default=None, ge=0, lt=150)


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
    hint: PhotoHintPublic | None = None


class CaseMatchingPublic(BaseModel):
    """Whether a sighting can find the case today, under the serving model, and if not, why
    and what to do."""

    model_config = ConfigDict(from_attributes=True)

    matchable: bool
    reason: str | None
    model_id: str
    photos: int
    faces: int = Field(description="faces found in the case's photos")
    matchable_faces: int = Field(description="of those, the ones the serving model can match")


class CaseSummary(BaseModel):
    """A case in a list: its fields without photos."""

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
    last_seen_at: dt.datetime | None
    description: str
    status: CaseStatus
    public_fields: list[str]
    created_at: dt.datetime
    matching: CaseMatchingPublic

    @classmethod
    def of(cls, case: object, matching: object) -> Self:
        """The case's stored fields (read from the row) with its matching state."""
        fields = {name: getattr(case, name) for name in cls.model_fields if name != "matching"}
        return cls.model_validate({**fields, "matching": matching})


class CasePublic(CaseSummary):
    """A case as investigators and case managers see it (everything but files)."""

    photos: list[CasePhotoPublic] = []


class CandidatePublic(BaseModel):
    id: int
    sighting_face_id: int
    case_id: int
    case_name: str
    case_status: CaseStatus
    case_face_id: int
    case_photo_id: int | None
    sighting_face_crop_url: str
    case_face_crop_url: str
    case_photo_url: str | None
    distance: float
    rank: int
    model_id: str
    threshold: float
    under_threshold: bool  # distance <= the threshold in force when it was found
    status: CandidateStatus
    # How many false candidates a search is expected to bring at least this close, at today's
    # gallery size; null until `matcher calibrate` has run for the model.
    expected_false_per_search: float | None
    reported_for_alert: bool  # the sighting answered this case's alert: shown whatever its rank
    # Great-circle km and hours from the case's last-seen point and moment to the sighting
    # (null where either is unknown): a far sighting is shown all the same.
    km_from_last_seen: float | None
    hours_since_last_seen: float | None


class KeyCreate(InputModel):
    role: Role
    name: str = Field(min_length=1, max_length=200)


class KeyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    role: Role
    name: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None = None  # to the minute; null: not used since revision 0016


class KeyCreated(KeyPublic):
    key: str  # shown once


class Health(BaseModel):
    status: str  # "ok", or "rebuilding" (503: its indexes are being read from the store again)
    model_id: str
    # Several processes on one store: the index changes other processes committed that this
    # one has not applied yet, and how long the oldest has waited (as of its last round).
    index_changes_behind: int = 0
    index_lag_s: float = 0.0
