"""Investigators review candidates: the queue, one candidate, decisions, a case's confirmed
matches, and the sightings linked to a sighting. Every candidate shown is audited."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from matcher.api.deps import Investigator, MatcherDep, WorkerDep
from matcher.api.params import MAX_ID, Id, Since, Until
from matcher.api.review_schemas import (
    DecisionCreate,
    DecisionPublic,
    DecisionReceipt,
    ReviewCase,
    ReviewEntryPublic,
    ReviewPage,
    ReviewSighting,
    SightingLinkPublic,
    SightingLinks,
)
from matcher.api.urls import case_photo_url, crop_url
from matcher.service import GeoCircle, ReviewQuery, TimeField
from matcher.service.review import (
    MAX_PAGE,
    DecisionRecord,
    ReviewEntry,
    SightingLink,
    case_matches,
    decide_candidate,
    review_candidate,
    review_queue,
    sighting_links,
)
from matcher.vocabulary import CandidateStatus, Category

router = APIRouter(tags=["review"])

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"at most {MAX_PAGE}")]
QueueSort = Literal["likely", "newest", "missing"]
# The queue's orders by their names in the store (ReviewQuery.order).
SORTS: dict[str, Literal["distance", "recent", "missing"]] = {
    "likely": "distance", "newest": "recent", "missing": "missing"}
CursorParam = Annotated[str | None, Query(
    description="`next_cursor` of the previous page (keyset paging: stable while decisions "
                "take entries out of the queue)")]


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _decision(row: DecisionRecord) -> DecisionPublic:
    return DecisionPublic(id=row.id, candidate_id=row.candidate_id,
                          sighting_face_id=row.sighting_face_id, case_id=row.case_id,
                          verdict=row.verdict, note=row.note, reviewer=row.reviewer,
                          created_at=row.created_at)


def _link(link: SightingLink) -> SightingLinkPublic:
    return SightingLinkPublic(sighting=ReviewSighting.of(link.place), face_id=link.face_id,
                              face_crop_url=crop_url(link.face_id),
                              from_face_id=link.from_face_id, distance=link.distance)


def _entry(entry: ReviewEntry) -> ReviewEntryPublic:
    case = entry.case
    return ReviewEntryPublic(
        id=entry.candidate_id, status=entry.status, distance=entry.distance, rank=entry.rank,
        model_id=entry.model_id, threshold=entry.threshold,
        false_match_rate=entry.false_match_rate, created_at=entry.created_at,
        reviewed_at=entry.reviewed_at, reviewed_by=entry.reviewed_by,
        sighting_face_id=entry.sighting_face_id, face_crop_url=crop_url(entry.sighting_face_id),
        case_face_id=entry.case_face_id, case_face_crop_url=crop_url(entry.case_face_id),
        case_photo_id=entry.case_photo_id,
        case_photo_url=(case_photo_url(case.id, entry.case_photo_id)
                        if entry.case_photo_id is not None else None),
        sighting=ReviewSighting.of(entry.sighting),
        case=ReviewCase(id=case.id, name=case.name, category=case.category, status=case.status,
                        last_seen_place=case.last_seen_place, last_seen_lat=case.last_seen_lat,
                        last_seen_lon=case.last_seen_lon, missing_since=case.missing_since,
                        last_seen_at=case.last_seen_at),
        age_gap_years=entry.age_gap_years,
        decisions=[_decision(d) for d in entry.decisions],
        seen_count=len(entry.seen), seen=[_link(link) for link in entry.seen],
        reported_for_alert=entry.reported_for_alert, km_from_last_seen=entry.km_from_last_seen,
        hours_since_last_seen=entry.hours_since_last_seen,
    )


@router.get("/review/queue", response_model=ReviewPage)
async def get_queue(
    actor: Investigator, matcher: MatcherDep, worker: WorkerDep,
    status: Annotated[list[Literal["pending", "needs_info"]] | None, Query(
        description="repeat for several; default pending")] = None,
    case_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    category: Category | None = None,
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    radius_km: Annotated[float | None, Query(gt=0, le=20_100, description=(
        "with lat and lon: sightings within this great-circle distance; sightings without a "
        "position are left out"))] = None,
    since: Since = None,
    until: Until = None,
    time_field: Annotated[TimeField, Query(description=(
        "what since/until compare: `seen` (taken_at, else uploaded_at), `taken` or "
        "`uploaded`"))] = "seen",
    sort: Annotated[QueueSort, Query(description=(
        "`likely`: most likely first (the calibrated figure); `newest`: newest sighting first "
        "(seen: taken, else uploaded); `missing`: the case missing longest first"))] = "likely",
    reported_for_alert: Annotated[bool, Query(description=(
        "only the sightings that answered the case's alert, under the threshold or not"))] = False,
    max_km_from_last_seen: Annotated[float | None, Query(gt=0, le=20_100, description=(
        "only sightings within this great-circle distance of the case's last-seen point (both "
        "known)"))] = None,
    limit: Limit = 50, cursor: CursorParam = None,
) -> ReviewPage:
    """Candidates under the threshold in force when they were found, most likely first (the
    lowest calibrated false match rate of their distance, the same scale for every model; then
    distance / threshold; candidates of a model without a calibration after the others, by
    distance / threshold), across every sighting; or in the `sort` asked for (a cursor holds
    to the sort it was made in). Each entry shown is audited."""
    query = ReviewQuery(
        statuses=tuple(CandidateStatus(s) for s in (status or ["pending"])),
        case_id=case_id, category=category, near=GeoCircle.maybe(lat, lon, radius_km),
        since=_utc(since), until=_utc(until), time_field=time_field, order=SORTS[sort],
        reported_for_alert=reported_for_alert, max_km_from_last_seen=max_km_from_last_seen,
    )
    page = await worker(review_queue, matcher, actor, query, limit, cursor)
    return ReviewPage(items=[_entry(e) for e in page.entries], next_cursor=page.next_cursor)


@router.get("/review/candidates/{candidate_id}", response_model=ReviewEntryPublic)
async def get_candidate(
    candidate_id: Id, actor: Investigator, matcher: MatcherDep, worker: WorkerDep
) -> ReviewEntryPublic:
    """One candidate, whatever its status or distance."""
    return _entry(await worker(review_candidate, matcher, actor, candidate_id))


@router.post("/review/candidates/{candidate_id}/decision", status_code=201,
             response_model=DecisionReceipt)
async def post_decision(
    candidate_id: Id, body: DecisionCreate, actor: Investigator, matcher: MatcherDep,
    worker: WorkerDep,
) -> DecisionReceipt:
    """`match` confirms (the case's matches list it), `not_match` rejects for good (this face
    is never proposed for this case again), `needs_info` parks it. The latest decision wins."""
    result = await worker(decide_candidate, matcher, actor, candidate_id, body.verdict,
                          body.note)
    return DecisionReceipt(decision=_decision(result.decision),
                           candidate_status=result.candidate_status,
                           also_updated=result.also_updated)


@router.get("/cases/{case_id}/matches", response_model=ReviewPage)
async def get_case_matches(
    case_id: Id, actor: Investigator, matcher: MatcherDep, worker: WorkerDep,
    limit: Limit = 50, cursor: CursorParam = None,
) -> ReviewPage:
    """The case's confirmed candidates, newest sighting first."""
    page = await worker(case_matches, matcher, actor, case_id, limit, cursor)
    return ReviewPage(items=[_entry(e) for e in page.entries], next_cursor=page.next_cursor)


@router.get("/sightings/{sighting_id}/links", response_model=SightingLinks)
async def get_sighting_links(
    sighting_id: Id, actor: Investigator, matcher: MatcherDep, worker: WorkerDep
) -> SightingLinks:
    """Other sightings with a face within the match threshold of one of this sighting's
    fit faces (likely the same person), closest first."""
    links = await worker(sighting_links, matcher, actor, sighting_id)
    return SightingLinks(sighting_id=sighting_id, links=[_link(link) for link in links])
