"""Admins create and revoke API keys."""

from __future__ import annotations

from fastapi import APIRouter, Response

from matcher.api.deps import Admin, MatcherDep, WorkerDep
from matcher.api.params import Id
from matcher.api.schemas import KeyCreate, KeyCreated, KeyPublic
from matcher.service import new_key, revoke

router = APIRouter(tags=["keys"])


@router.post("/keys", status_code=201, response_model=KeyCreated)
async def post_key(
    body: KeyCreate, _: Admin, matcher: MatcherDep, worker: WorkerDep
) -> KeyCreated:
    """The plaintext key is in this response only; it is stored hashed."""
    row, plaintext = await worker(new_key, matcher.sessions, body.role, body.name)
    return KeyCreated(**KeyPublic.model_validate(row).model_dump(), key=plaintext)


@router.delete("/keys/{key_id}", status_code=204, response_class=Response)
async def delete_key(key_id: Id, _: Admin, matcher: MatcherDep, worker: WorkerDep) -> Response:
    await worker(revoke, matcher.sessions, key_id)
    return Response(status_code=204)
