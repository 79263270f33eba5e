"""Case managers register and edit cases; investigators read them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Request, Response

from matcher.api.deps import CaseManager, CaseReader, MatcherDep, Worker, WorkerDep
from matcher.api.limits import DecodeBudgetDep
from matcher.api.metrics import MetricsDep
from matcher.api.params import AfterId, Id
from matcher.api.photo_hint import hint_of
from matcher.api.schemas import (
    CaseCreate,
    CasePhotoForm,
    CasePhotoReceipt,
    CasePublic,
    CaseSummary,
    CaseUpdate,
    FaceFeedback,
)
from matcher.api.upload import multipart_body, read_form, read_upload
from matcher.api.urls import JPEG, jpeg
from matcher.service import (
    CasePhotoUpload,
    CaseRecord,
    NewCase,
    Runtime,
    add_photo,
    browse_cases,
    case_matching,
    case_photo_image,
    create_case,
    erase,
    read_case,
    remove_photo,
    update_case,
)
from matcher.vocabulary import CaseStatus, Category

router = APIRouter(tags=["cases"])


Model = TypeVar("Model", bound=CaseSummary)


async def _with_matching(
    model: type[Model], cases: Sequence[CaseRecord], matcher: Runtime, worker: Worker
) -> list[Model]:
    """The response bodies of `cases`, each with whether a sighting can find it today."""
    matching = await worker(case_matching, matcher, cases)
    return [model.of(case, matching[case.id]) for case in cases]


@router.post("/cases", status_code=201, response_model=CasePublic)
async def post_case(
    body: CaseCreate, actor: CaseManager, matcher: MatcherDep, worker: WorkerDep
) -> CasePublic:
    case = await worker(create_case, matcher, NewCase(**body.model_dump()), actor)
    return (await _with_matching(CasePublic, [case], matcher, worker))[0]


@router.get("/cases", response_model=list[CaseSummary])
async def get_cases(
    actor: CaseReader, matcher: MatcherDep, worker: WorkerDep,
    status: CaseStatus | None = None, category: Category | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after_id: AfterId = 0,
    matchable: Annotated[bool | None, Query(
        description="false: only the cases no sighting can find today (see each case's "
                    "`matching.reason`); true: only those it can")] = None,
) -> list[CaseSummary]:
    """Cases by id, a page at a time."""
    cases = await worker(browse_cases, matcher, actor, status, category, limit, after_id,
                         matchable)
    return await _with_matching(CaseSummary, cases, matcher, worker)


@router.patch("/cases/{case_id}", response_model=CasePublic)
async def patch_case(
    case_id: Id, body: CaseUpdate, actor: CaseManager, matcher: MatcherDep, worker: WorkerDep
) -> CasePublic:
    """Changes the fields sent, in one transaction: a refused edit changes nothing. A case
    marked found or closed is out of matching before this returns."""
    changes = body.model_dump(exclude_unset=True)
    status, public_fields = changes.pop("status", None), changes.pop("public_fields", None)
    case = await worker(update_case, matcher, case_id, status, public_fields, actor, changes)
    return (await _with_matching(CasePublic, [case], matcher, worker))[0]


@router.post("/cases/{case_id}/photos", status_code=201, response_model=CasePhotoReceipt,
             openapi_extra=multipart_body(CasePhotoForm))
async def post_case_photo(
    request: Request, case_id: Id, actor: CaseManager, matcher: MatcherDep, worker: WorkerDep,
    metrics: MetricsDep, budget: DecodeBudgetDep,
) -> CasePhotoReceipt:
    async with read_form(request, CasePhotoForm) as form:  # only now: the key passed
        data = await read_upload(form.photo, matcher.settings.max_image_bytes)
    async with budget.reserve(data):  # the pixels it decodes, counted before the worker
        result = await worker.embed(add_photo, matcher, case_id,
                                    CasePhotoUpload(data, form.taken_on, form.age_at_photo), actor)
    metrics.case_photo_added(result)
    return CasePhotoReceipt(case_id=result.case_id, photo_id=result.photo_id, faces=[
        FaceFeedback(box=f.box, fit=f.fit, reasons=list(f.reasons)) for f in result.faces],
        hint=hint_of(result.faces))


@router.delete("/cases/{case_id}", status_code=204, response_class=Response)
async def delete_case(
    case_id: Id, actor: CaseManager, matcher: MatcherDep, worker: WorkerDep
) -> Response:
    """Erases the case on request: out of matching at once; its rows, photos, vectors,
    candidates and decisions are deleted, so no later reindex can bring it back."""
    await worker(erase, matcher, case_id, actor)
    return Response(status_code=204)


@router.delete("/cases/{case_id}/photos/{photo_id}", status_code=204, response_class=Response)
async def delete_case_photo(
    case_id: Id, photo_id: Id, actor: CaseManager, matcher: MatcherDep, worker: WorkerDep
) -> Response:
    """The photo, its faces (out of matching before this returns) and their candidates go;
    investigators' decisions stay."""
    await worker(remove_photo, matcher, case_id, photo_id, actor)
    return Response(status_code=204)


@router.get("/cases/{case_id}/photos/{photo_id}/image", response_class=Response,
            responses=JPEG)
async def get_case_photo_image(
    case_id: Id, photo_id: Id, actor: CaseReader, matcher: MatcherDep, worker: WorkerDep
) -> Response:
    data = await worker(case_photo_image, matcher, case_id, photo_id, actor)
    return jpeg(data)


@router.get("/cases/{case_id}", response_model=CasePublic)
async def get_case(
    case_id: Id, actor: CaseReader, matcher: MatcherDep, worker: WorkerDep
) -> CasePublic:
    case = await worker(read_case, matcher, case_id, actor)
    return (await _with_matching(CasePublic, [case], matcher, worker))[0]
