"""The FastAPI app: the service is opened once in the lifespan and handed to the routes."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from matcher.api import caching, errors, limits, metrics
from matcher.api.deps import Worker
from matcher.api.routes import (
    admin,
    alerts,
    audit,
    cases,
    desk,
    keys,
    page,
    partners,
    review,
    sightings,
)
from matcher.api.schemas import Health
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import Runtime, open_runtime
from matcher.service.holders import SERVE, claim
from matcher.service.index_follow import IndexFollower
from matcher.service.maintenance import Maintenance
from matcher.service.reindex import ReindexRunner
from matcher.service.webhooks import Dispatcher

log = logging.getLogger(__name__)


def create_app(settings: Settings, pipeline: FacePipeline | None = None) -> FastAPI:
    """The app. `pipeline` lets tests share one loaded pipeline between apps; by default the
    lifespan loads it (once per process)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        matcher = await anyio.to_thread.run_sync(
            functools.partial(open_runtime, settings, pipeline, require_vectors=True))
        try:  # held for the server's lifetime: housekeeping on one server (holders.py)
            hold = await anyio.to_thread.run_sync(claim, matcher.sessions, SERVE)
        except BaseException:
            matcher.close()
            raise
        app.state.matcher = matcher
        app.state.worker = Worker(settings.workers, settings.store_workers)
        app.state.reindex = ReindexRunner()
        maintenance = Maintenance(matcher, hold)
        maintenance.start()
        webhooks = Dispatcher(matcher)  # partners' outbox: sent from the store, resumed here
        webhooks.start()
        follower = IndexFollower(matcher)  # what other processes of the store change
        app.state.follower = follower
        follower.start()
        log.info("serving model %s with %d active case faces", matcher.model_id,
                 len(matcher.index))
        try:
            yield
        finally:
            follower.stop()
            webhooks.stop()
            maintenance.stop()
            app.state.reindex.stop(wait_s=60)  # its vectors so far stay; a new run resumes
            try:
                matcher.close()
            finally:  # after the save: the index copy is written before a reindex may start
                hold.release()
                matcher.engine.dispose()

    # No /docs or /redoc: their pages load Swagger's and ReDoc's scripts from a CDN, which
    # would run on the review page's origin (where an investigator's key sits in the tab's
    # storage) and cannot load offline anyway. /openapi.json describes the API and holds no
    # data; tools and clients read it there.
    app = FastAPI(title="matcher", version="1", lifespan=lifespan, docs_url=None,
                  redoc_url=None,
                  description="Matches sighting photos against missing-person cases.")
    errors.install(app)
    caching.install(app)
    limits.install(app, settings)  # inside the metrics middleware: its 413s are counted too
    observed = metrics.install(app)
    for module in (sightings, alerts, cases, keys, review, desk, audit, admin, partners):
        observed.include(module.router, prefix="/v1")
    observed.include(page.router)  # the review page: no key, no data (matcher/web)

    @app.get("/healthz", response_model=Health, tags=["operations"],
             responses={503: {"model": Health, "description": "not ready: rebuilding"}})
    async def healthz(request: Request) -> JSONResponse:
        matcher: Runtime = request.app.state.matcher
        follow = request.app.state.follower.last_status
        health = Health(status="rebuilding" if follow.rebuilding else "ok",
                        model_id=matcher.model_id, index_changes_behind=follow.behind,
                        index_lag_s=round(follow.lag_s, 3))
        return JSONResponse(health.model_dump(), status_code=503 if follow.rebuilding else 200)

    return app
