"""Dependencies: the service context, the worker pool, and API-key roles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from matcher.service import KeyRecord, Runtime
from matcher.service.key_use import audit_admin_use, authenticate_and_note
from matcher.vocabulary import Actor, Role

T = TypeVar("T")


class Unauthenticated(Exception):
    """No key, or a wrong or revoked one (401)."""


class Forbidden(Exception):
    """A live key whose role may not use this endpoint (403)."""


def get_matcher(request: Request) -> Runtime:
    matcher: Runtime = request.app.state.matcher
    return matcher


MatcherDep = Annotated[Runtime, Depends(get_matcher)]


class Worker:
    """Runs blocking service calls off the event loop, in two separate pools of threads.

    Embedding work (an uploaded sighting or case photo: decode, detect, embed, search) runs at
    most `embed_limit` calls at once, sized to the cores; the rest wait their turn in anyio's
    queue. Everything else (key checks, reads, decisions: database work) has its own
    `store_limit` threads, so an investigator's page never waits behind a burst of uploads.
    """

    def __init__(self, embed_limit: int, store_limit: int) -> None:
        self.embed_limiter = anyio.CapacityLimiter(embed_limit)
        self.store_limiter = anyio.CapacityLimiter(store_limit)

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.store_limiter)

    async def embed(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.embed_limiter)


def get_worker(request: Request) -> Worker:
    worker: Worker = request.app.state.worker
    return worker


WorkerDep = Annotated[Worker, Depends(get_worker)]

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False)


async def current_key(
    matcher: MatcherDep, worker: WorkerDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> KeyRecord:
    plaintext = bearer.credentials if bearer is not None else header
    if not plaintext:
        raise Unauthenticated("an API key is required (Authorization: Bearer or X-API-Key)")
    key = await worker(authenticate_and_note, matcher.sessions, plaintext)
    if key is None:
        raise Unauthenticated("the API key is wrong or revoked")
    return key


def require(*roles: Role) -> Callable[..., Any]:
    """A dependency that lets through keys of these roles only, as the Actor to audit."""

    async def check(request: Request, key: Annotated[KeyRecord, Depends(current_key)],
                    matcher: MatcherDep, worker: WorkerDep) -> Actor:
        client = request.client.host if request.client is not None else None
        actor = Actor(key_id=key.id, name=key.name, role=key.role.value, client=client)
        if key.role is Role.ADMIN:  # it opens keys and the trail: each use, even refused
            # The full template (an included router's route has no /v1 here): the metrics'
            # table of the app's routes knows it.
            route: str = request.app.state.metrics.route_template(request.scope)
            await worker(audit_admin_use, matcher.sessions, actor, request.method, route)
        if key.role not in roles:
            raise Forbidden(f"a {key.role.value} key may not do this")
        return actor

    return check


TipApp = Annotated[Actor, Depends(require(Role.TIP_APP))]
Investigator = Annotated[Actor, Depends(require(Role.INVESTIGATOR))]
CaseReader = Annotated[Actor, Depends(require(Role.INVESTIGATOR, Role.CASE_MANAGER))]
CaseManager = Annotated[Actor, Depends(require(Role.CASE_MANAGER))]
Admin = Annotated[Actor, Depends(require(Role.ADMIN))]
