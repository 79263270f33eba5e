"""Admins list, create and revoke API keys; each creation and revocation is audited with the
admin who made it (matcher/service/key_admin.py)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from matcher.api.deps import Admin, MatcherDep, WorkerDep
from matcher.api.params import Id
from matcher.api.schemas import KeyCreate, KeyCreated, KeyPublic
from matcher.service.key_admin import create_key_as, key_list, revoke_key_as

router = APIRouter(tags=["keys"])


@router.get("/keys", response_model=list[KeyPublic])
async def get_keys(_: Admin, matcher: MatcherDep, worker: WorkerDep) -> list[KeyPublic]:
    """Every key, revoked ones too, by id: never its secret nor its hash."""
    return [KeyPublic.model_validate(key) for key in await worker(key_list, matcher.sessions)]


@router.post("/keys", status_code=201, response_model=KeyCreated)
async def post_key(
    body: KeyCreate, admin: Admin, matcher: MatcherDep, worker: WorkerDep
) -> KeyCreated:
    """The plaintext key is in this response only; it is stored hashed."""
    row, plaintext = await worker(create_key_as, matcher.sessions, admin, body.role, body.name)
    return KeyCreated(**KeyPublic.model_validate(row).model_dump(), key=plaintext)


@router.delete("/keys/{key_id}", status_code=204, response_class=Response)
async def delete_key(key_id: Id, admin: Admin, matcher: MatcherDep, worker: WorkerDep
                     ) -> Response:
    """409 `last_admin_key` for the last live admin key: make another admin key first."""
    await worker(revoke_key_as, matcher.sessions, admin, key_id)
    return Response(status_code=204)
