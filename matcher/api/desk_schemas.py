"""Response bodies of the investigator's desk: a sighting face's lineup, a case's view, and who
the caller's key is.

Pictures are URLs of the audited picture routes (matcher/api/urls.py), never file paths.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from matcher.api.review_schemas import DecisionPublic, ReviewSighting
from matcher.api.schemas import CasePhotoPublic, FaceRecord
from matcher.vocabulary import CandidateStatus, CaseStatus, Category, Role, Sex


class AgesPublic(BaseModel):
    """Years, estimated from the case's date of birth, else its age when missing plus the time
    since; null where the case gives neither (or the photo has neither age nor date)."""

    at_photo: float | None = Field(description="on the case photo")
    at_sighting: float | None = Field(description="on the day of the sighting (taken, else "
                                                   "uploaded)")
    now: float | None = Field(description="today")
    gap: float | None = Field(description="at_sighting - at_photo: the years the face aged "
                                          "between the two photos")


class PersonPublic(BaseModel):
    id: int
    name: str
    category: Category
    status: CaseStatus
    sex: Sex
    date_of_birth: dt.date | None
    age_when_missing: float | None
    missing_since: dt.date
    last_seen_place: str | None
    last_seen_lat: float | None
    last_seen_lon: float | None
    last_seen_at: dt.datetime | None


class LineupCardPublic(BaseModel):
    """One case beside the sighting face."""

    candidate_id: int
    status: CandidateStatus
    rank: int
    distance: float
    threshold: float  # in force when it was found
    under_threshold: bool  # false: a near miss
    model_id: str
    false_match_rate: float | None = Field(description=(
        "share of strangers' faces at least this close, per compared face (the calibration "
        "of the case's category); null without a calibration of the candidate's model"))
    expected_false_per_search: float | None = Field(description=(
        "false candidates a search is expected to bring at least this close, at today's "
        "number of case faces"))
    case: PersonPublic
    case_face_id: int  # the case's face closest to the sighting face
    case_face_crop_url: str
    case_face_box: list[float]  # [left, top, right, bottom] in the case photo, px
    case_photo_id: int | None
    case_photo_url: str | None
    ages: AgesPublic
    reviewed_by: str | None
    reviewed_at: dt.datetime | None
    decisions: list[DecisionPublic]  # on this sighting face and case, oldest first


class LineupSighting(ReviewSighting):
    """The sighting with its reporter's note and every face found in it."""

    note: str | None
    width: int
    height: int
    faces: list[FaceRecord]


class LineupPublic(BaseModel):
    face_id: int  # the sighting face searched
    face_crop_url: str
    sighting: LineupSighting
    cards: list[LineupCardPublic]  # most likely first
    near_misses: int = Field(description=(
        "pending candidates above the threshold left out of `cards`; "
        "`near_misses=true` lists them"))


class AgedPhotoPublic(CasePhotoPublic):
    url: str
    age: float | None  # on the photo: given with it, else from its date


class CaseEventPublic(BaseModel):
    """A candidate of the case: which sighting, how close, what was decided."""

    candidate_id: int
    status: CandidateStatus
    distance: float
    threshold: float
    under_threshold: bool
    false_match_rate: float | None
    sighting: ReviewSighting
    sighting_face_id: int
    face_crop_url: str  # the sighting face
    case_face_id: int
    age_at_sighting: float | None
    reviewed_by: str | None
    reviewed_at: dt.datetime | None


class CaseViewPublic(BaseModel):
    case: PersonPublic
    description: str
    age_now: float | None
    photos: list[AgedPhotoPublic]
    history: list[CaseEventPublic] = Field(description=(
        "candidates under their threshold or decided, newest sighting first"))
    more: bool = Field(description="older candidates beyond `history`")
    seen: list[CaseEventPublic] = Field(description=(
        "where and when the person was seen: the confirmed sightings, oldest first"))


class KeyWho(BaseModel):
    """The caller's own key: what the page shows in its header."""

    id: int
    name: str
    role: Role
