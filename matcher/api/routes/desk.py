"""The investigator's desk: the lineup of one sighting face, a case's view, and who the
caller's key is (the review page's header). Every candidate shown is audited by the service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from matcher.api.deps import Investigator, MatcherDep, WorkerDep, current_key
from matcher.api.desk_schemas import (
    AgedPhotoPublic,
    AgesPublic,
    CaseEventPublic,
    CaseViewPublic,
    KeyWho,
    LineupCardPublic,
    LineupPublic,
    LineupSighting,
    PersonPublic,
)
from matcher.api.params import Id
from matcher.api.review_schemas import DecisionPublic, ReviewSighting
from matcher.api.schemas import FaceRecord
from matcher.api.urls import case_photo_url, crop_url, sighting_photo_url
from matcher.service import KeyRecord
from matcher.service.case_view import AgedPhoto, CaseEvent, case_view
from matcher.service.lineup import Lineup as LineupRecord
from matcher.service.lineup import LineupCard, PersonRecord, face_lineup
from matcher.service.review import DecisionRecord

router = APIRouter(tags=["review"])


def _decision(decision: DecisionRecord) -> DecisionPublic:
    return DecisionPublic.model_validate(decision, from_attributes=True)


def _person(case: PersonRecord) -> PersonPublic:
    return PersonPublic.model_validate(case, from_attributes=True)


def _card(card: LineupCard) -> LineupCardPublic:
    photo = card.case_photo_id
    return LineupCardPublic(
        candidate_id=card.candidate_id, status=card.status, rank=card.rank,
        distance=card.distance, threshold=card.threshold, under_threshold=card.under_threshold,
        model_id=card.model_id, false_match_rate=card.false_match_rate,
        expected_false_per_search=card.expected_false_per_search, case=_person(card.case),
        case_face_id=card.case_face_id, case_face_crop_url=crop_url(card.case_face_id),
        case_face_box=card.case_face_box, case_photo_id=photo,
        case_photo_url=None if photo is None else case_photo_url(card.case.id, photo),
        ages=AgesPublic(at_photo=card.ages.at_photo, at_sighting=card.ages.at_sighting,
                        now=card.ages.now, gap=card.ages.gap),
        reviewed_by=card.reviewed_by, reviewed_at=card.reviewed_at,
        decisions=[_decision(d) for d in card.decisions],
    )


def _lineup(lineup: LineupRecord) -> LineupPublic:
    s = lineup.sighting
    sighting = LineupSighting(
        id=s.id, taken_at=s.taken_at, uploaded_at=s.uploaded_at, lat=s.lat, lon=s.lon,
        photo_url=sighting_photo_url(s.id), burst_group=s.burst_group, note=s.note,
        width=s.width, height=s.height,
        faces=[FaceRecord.model_validate(face, from_attributes=True) for face in s.faces])
    return LineupPublic(face_id=lineup.face_id, face_crop_url=crop_url(lineup.face_id),
                        sighting=sighting, cards=[_card(c) for c in lineup.cards],
                        near_misses=lineup.near_misses)


@router.get("/review/lineup/{face_id}", response_model=LineupPublic)
async def get_lineup(
    face_id: Id, actor: Investigator, matcher: MatcherDep, worker: WorkerDep,
    near_misses: Annotated[bool, Query(description=(
        "also the pending candidates above their threshold, each `under_threshold: false`"))]
    = False,
) -> LineupPublic:
    """A sighting face (a face id of `GET /v1/sightings/{id}`, or an entry's
    `sighting_face_id`) beside every case it was compared with, most likely first: each
    case's closest face and its photo, the ages, the distance and what it means, the
    decisions so far. The sighting comes whole: its photo, every face, the reporter's note."""
    return _lineup(await worker(face_lineup, matcher, actor, face_id, near_misses))


def _event(event: CaseEvent) -> CaseEventPublic:
    return CaseEventPublic(
        candidate_id=event.candidate_id, status=event.status, distance=event.distance,
        threshold=event.threshold, under_threshold=event.under_threshold,
        false_match_rate=event.false_match_rate, sighting=ReviewSighting.of(event.sighting),
        sighting_face_id=event.sighting_face_id, face_crop_url=crop_url(event.sighting_face_id),
        case_face_id=event.case_face_id, age_at_sighting=event.age_at_sighting,
        reviewed_by=event.reviewed_by, reviewed_at=event.reviewed_at,
    )


def _photo(case_id: int, aged: AgedPhoto) -> AgedPhotoPublic:
    photo = aged.photo
    return AgedPhotoPublic(
        id=photo.id, taken_on=photo.taken_on, age_at_photo=photo.age_at_photo,
        width=photo.width, height=photo.height,
        faces=[FaceRecord.model_validate(face, from_attributes=True) for face in photo.faces],
        url=case_photo_url(case_id, photo.id), age=aged.age)


@router.get("/review/cases/{case_id}", response_model=CaseViewPublic)
async def get_case_view(
    case_id: Id, actor: Investigator, matcher: MatcherDep, worker: WorkerDep,
) -> CaseViewPublic:
    """The case whole: every photo with the age on it, its candidates over time (under their
    threshold, or decided; the newest 200), and where and when it was seen (the confirmed
    sightings, oldest first)."""
    view = await worker(case_view, matcher, actor, case_id)
    case = view.case
    return CaseViewPublic(
        case=PersonPublic.model_validate(case, from_attributes=True),
        description=case.description, age_now=view.age_now,
        photos=[_photo(case.id, aged) for aged in view.photos],
        history=[_event(e) for e in view.history], more=view.more,
        seen=[_event(e) for e in view.seen],
    )


@router.get("/me", response_model=KeyWho, tags=["keys"])
async def get_me(key: Annotated[KeyRecord, Depends(current_key)]) -> KeyWho:
    """The caller's own key (any role): its id, name and role, never the secret."""
    return KeyWho(id=key.id, name=key.name, role=key.role)
