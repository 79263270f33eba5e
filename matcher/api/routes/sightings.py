"""Tip apps send sightings; investigators read their candidates."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from matcher.api.deps import Investigator, MatcherDep, WorkerDep
from matcher.api.limits import DecodeBudgetDep, RateLimitedTipApp
from matcher.api.metrics import MetricsDep
from matcher.api.params import MAX_ID, Id
from matcher.api.photo_hint import hint_of
from matcher.api.schemas import (
    CandidatePublic,
    FaceFeedback,
    SightingForm,
    SightingPublic,
    SightingReceipt,
)
from matcher.api.upload import multipart_body, read_form, read_upload, taken_at_utc
from matcher.api.urls import JPEG, case_photo_url, crop_url, jpeg
from matcher.service import (
    CandidateRecord,
    NewSighting,
    Runtime,
    browse_sightings,
    expected_false,
    face_crop,
    ingest_sighting,
    read_sighting,
    searched_face_counts,
    sighting_candidates,
    sighting_photo,
)

router = APIRouter(tags=["sightings"])


@router.post("/sightings", status_code=201, response_model=SightingReceipt,
             openapi_extra=multipart_body(SightingForm))
async def post_sighting(
    request: Request, key: RateLimitedTipApp, matcher: MatcherDep, worker: WorkerDep,
    metrics: MetricsDep, budget: DecodeBudgetDep,
) -> SightingReceipt:
    """Every face is matched; the answer says which faces were usable, never which cases."""
    async with read_form(request, SightingForm) as form:  # only now: the key and rate passed
        taken_at = taken_at_utc(form.taken_at)
        data = await read_upload(form.photo, matcher.settings.max_image_bytes)
    new = NewSighting(app=key.name, taken_at=taken_at, lat=form.lat, lon=form.lon,
                      api_key_id=key.key_id, reporter_contact=form.reporter_contact,
                      note=form.note, alert_case_id=form.alert_case_id)
    async with budget.reserve(data):  # the pixels it decodes, counted before the worker
        result = await worker.embed(ingest_sighting, matcher, data, new)
    metrics.sighting_ingested(result)
    return SightingReceipt(id=result.sighting_id, faces=[
        FaceFeedback(box=f.box, fit=f.fit, reasons=list(f.reasons)) for f in result.faces],
        hint=hint_of(result.faces))


def _candidate(matcher: Runtime, row: CandidateRecord, faces: dict[str, int]
               ) -> CandidatePublic:
    photo_id = row.case_photo_id
    return CandidatePublic(
        id=row.id, sighting_face_id=row.sighting_face_id, case_id=row.case_id,
        case_name=row.case_name, case_status=row.case_status, case_face_id=row.case_face_id,
        case_photo_id=photo_id, sighting_face_crop_url=crop_url(row.sighting_face_id),
        case_face_crop_url=crop_url(row.case_face_id),
        case_photo_url=None if photo_id is None else case_photo_url(row.case_id, photo_id),
        distance=row.distance, rank=row.rank, model_id=row.model_id, threshold=row.threshold,
        under_threshold=row.distance <= row.threshold, status=row.status,
        expected_false_per_search=expected_false(matcher, row.case_category.value, row.distance,
                                                 faces, model_id=row.model_id),
        reported_for_alert=row.reported_for_alert, km_from_last_seen=row.km_from_last_seen,
        hours_since_last_seen=row.hours_since_last_seen,
    )


@router.get("/sightings", response_model=list[SightingPublic])
async def get_sightings(
    actor: Investigator, matcher: MatcherDep, worker: WorkerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID,
                                        description="the last id of the previous page")]
    = None,
) -> list[SightingPublic]:
    """The newest sightings first, a page at a time."""
    rows = await worker(browse_sightings, matcher, actor, limit, before_id)
    return [SightingPublic.model_validate(row) for row in rows]


@router.get("/sightings/{sighting_id}/candidates", response_model=list[CandidatePublic])
async def get_candidates(
    sighting_id: Id, actor: Investigator, matcher: MatcherDep, worker: WorkerDep
) -> list[CandidatePublic]:
    """Ranked cases per sighting face (rank 1 closest), near misses included."""
    rows = await worker(sighting_candidates, matcher, sighting_id, actor)
    faces = await worker(searched_face_counts, matcher) if matcher.calibrations else {}
    return [_candidate(matcher, row, faces) for row in rows]


@router.get("/sightings/{sighting_id}/photo", response_class=Response, responses=JPEG)
async def get_sighting_photo(
    sighting_id: Id, actor: Investigator, matcher: MatcherDep, worker: WorkerDep
) -> Response:
    """The stored photo: re-encoded at upload, without EXIF, GPS or any other metadata."""
    data = await worker(sighting_photo, matcher, sighting_id, actor)
    return jpeg(data)


@router.get("/sightings/{sighting_id}", response_model=SightingPublic)
async def get_sighting(
    sighting_id: Id, actor: Investigator, matcher: MatcherDep, worker: WorkerDep
) -> SightingPublic:
    return SightingPublic.model_validate(await worker(read_sighting, matcher, sighting_id, actor))


@router.get("/faces/{face_id}/crop", response_class=Response, responses=JPEG, tags=["faces"])
async def get_face_crop(
    face_id: Id, actor: Investigator, matcher: MatcherDep, worker: WorkerDep
) -> Response:
    """A face of a sighting or of a case photo, with a margin, at most 320 px."""
    data = await worker(face_crop, matcher, face_id, actor)
    return jpeg(data)
