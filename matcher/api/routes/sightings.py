"""Tip apps send sightings; investigators read their candidates."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from matcher.api.deps import Investigator, MatcherDep, TipApp, WorkerDep
from matcher.api.schemas import CandidatePublic, FaceFeedback, SightingPublic, SightingReceipt
from matcher.api.upload import read_upload
from matcher.service import ingest_sighting, read_sighting, sighting_candidates
from matcher.store import Candidate, NewSighting

router = APIRouter(tags=["sightings"])


@router.post("/sightings", status_code=201, response_model=SightingReceipt)
async def post_sighting(
    key: TipApp, matcher: MatcherDep, worker: WorkerDep,
    photo: Annotated[UploadFile, File(description="JPEG, PNG, WebP, GIF, BMP or TIFF")],
    taken_at: Annotated[dt.datetime | None, Form()] = None,
    lat: Annotated[float | None, Form(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Form(ge=-180, le=180)] = None,
    note: Annotated[str | None, Form(max_length=2000)] = None,
    reporter_contact: Annotated[str | None, Form(max_length=500)] = None,
) -> SightingReceipt:
    """Every face is matched; the answer says which faces were usable, never which cases.

    `note` is validated but not stored yet (the store has no column for it).
    """
    if taken_at is not None and taken_at.tzinfo is None:
        taken_at = taken_at.replace(tzinfo=dt.UTC)
    data = await read_upload(photo, matcher.settings.max_image_bytes)
    new = NewSighting(app=key.name, taken_at=taken_at, lat=lat, lon=lon, api_key_id=key.id,
                      reporter_contact=reporter_contact)
    result = await worker(ingest_sighting, matcher, data, new)
    return SightingReceipt(id=result.sighting_id, faces=[
        FaceFeedback(box=f.box, fit=f.fit, reasons=list(f.reasons)) for f in result.faces])


def _candidate(row: Candidate) -> CandidatePublic:
    return CandidatePublic(
        id=row.id, sighting_face_id=row.sighting_face_id, case_id=row.case_id,
        case_name=row.case.name, case_status=row.case.status, case_face_id=row.case_face_id,
        case_photo_id=row.case_face.case_photo_id, distance=row.distance, rank=row.rank,
        model_id=row.model_id, threshold=row.threshold,
        under_threshold=row.distance <= row.threshold, status=row.status,
    )


@router.get("/sightings/{sighting_id}/candidates", response_model=list[CandidatePublic])
async def get_candidates(
    sighting_id: int, _: Investigator, matcher: MatcherDep, worker: WorkerDep
) -> list[CandidatePublic]:
    """Ranked cases per sighting face (rank 1 closest), near misses included."""
    rows = await worker(sighting_candidates, matcher, sighting_id)
    return [_candidate(row) for row in rows]


@router.get("/sightings/{sighting_id}", response_model=SightingPublic)
async def get_sighting(
    sighting_id: int, _: Investigator, matcher: MatcherDep, worker: WorkerDep
) -> SightingPublic:
    return SightingPublic.model_validate(await worker(read_sighting, matcher, sighting_id))
