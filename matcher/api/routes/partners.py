"""Admins register the partner apps that receive alert events at their webhooks, and read
what was delivered to each."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from matcher.api.deps import Admin, MatcherDep, WorkerDep
from matcher.api.params import MAX_ID, Id
from matcher.api.partner_schemas import (
    DeliveryPublic,
    PartnerCreate,
    PartnerCreated,
    PartnerPublic,
)
from matcher.service.partners import (
    HomeArea,
    browse_partners,
    deliveries_log,
    register_partner,
    remove_partner,
)

router = APIRouter(tags=["partners"])


@router.post("/partners", status_code=201, response_model=PartnerCreated)
async def post_partner(
    body: PartnerCreate, actor: Admin, matcher: MatcherDep, worker: WorkerDep
) -> PartnerCreated:
    """A partner app; the answer holds the secret of its signatures, this once."""
    home = None if body.home is None else HomeArea(body.home.lat, body.home.lon,
                                                   body.home.radius_km)
    partner = await worker(register_partner, matcher, body.name, body.url, body.categories,
                           home, actor)
    return PartnerCreated.model_validate(partner)


@router.get("/partners", response_model=list[PartnerPublic])
async def get_partners(_: Admin, matcher: MatcherDep, worker: WorkerDep) -> list[PartnerPublic]:
    return [PartnerPublic.model_validate(p) for p in await worker(browse_partners, matcher)]


@router.delete("/partners/{partner_id}", response_model=PartnerPublic)
async def delete_partner(
    partner_id: Id, actor: Admin, matcher: MatcherDep, worker: WorkerDep
) -> PartnerPublic:
    """No more events for it; those still waiting are cancelled (the log keeps them)."""
    return PartnerPublic.model_validate(await worker(remove_partner, matcher, partner_id, actor))


@router.get("/partners/{partner_id}/deliveries", response_model=list[DeliveryPublic])
async def get_deliveries(
    partner_id: Id, _: Admin, matcher: MatcherDep, worker: WorkerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description=(
        "the last id of the previous page"))] = None,
) -> list[DeliveryPublic]:
    """Its deliveries log, newest first: each event, its status and its attempts."""
    rows = await worker(deliveries_log, matcher, partner_id, limit, before_id)
    return [DeliveryPublic.model_validate(row) for row in rows]
