"""Case managers register and edit cases; investigators read them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from matcher.api.deps import CaseManager, CaseReader, MatcherDep, WorkerDep
from matcher.api.schemas import (
    CaseCreate,
    CasePhotoReceipt,
    CasePublic,
    CaseUpdate,
    FaceFeedback,
)
from matcher.api.upload import read_upload
from matcher.service import CasePhotoUpload, add_photo, create_case, read_case, update_case
from matcher.store import NewCase

router = APIRouter(tags=["cases"])


@router.post("/cases", status_code=201, response_model=CasePublic)
async def post_case(
    body: CaseCreate, _: CaseManager, matcher: MatcherDep, worker: WorkerDep
) -> CasePublic:
    case = await worker(create_case, matcher, NewCase(**body.model_dump()))
    return CasePublic.model_validate(case)


@router.patch("/cases/{case_id}", response_model=CasePublic)
async def patch_case(
    case_id: int, body: CaseUpdate, _: CaseManager, matcher: MatcherDep, worker: WorkerDep
) -> CasePublic:
    """A case marked found or closed is out of matching before this returns."""
    case = await worker(update_case, matcher, case_id, body.status, body.public_fields)
    return CasePublic.model_validate(case)


@router.post("/cases/{case_id}/photos", status_code=201, response_model=CasePhotoReceipt)
async def post_case_photo(
    case_id: int, _: CaseManager, matcher: MatcherDep, worker: WorkerDep,
    photo: Annotated[UploadFile, File()],
    taken_on: Annotated[dt.date | None, Form()] = None,
    age_at_photo: Annotated[float | None, Form(ge=0, lt=150)] = None,
) -> CasePhotoReceipt:
    data = await read_upload(photo, matcher.settings.max_image_bytes)
    result = await worker(add_photo, matcher, case_id,
                          CasePhotoUpload(data, taken_on, age_at_photo))
    return CasePhotoReceipt(case_id=result.case_id, photo_id=result.photo_id, faces=[
        FaceFeedback(box=f.box, fit=f.fit, reasons=list(f.reasons)) for f in result.faces])


@router.get("/cases/{case_id}", response_model=CasePublic)
async def get_case(
    case_id: int, _: CaseReader, matcher: MatcherDep, worker: WorkerDep
) -> CasePublic:
    return CasePublic.model_validate(await worker(read_case, matcher, case_id))
