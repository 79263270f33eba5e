"""Operators: reindex the live service to another model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from matcher.api.deps import Admin, MatcherDep, WorkerDep
from matcher.config import DetectorName, EmbedderName
from matcher.service.reindex import ReindexJob, ReindexRunner, ReindexStatus
from matcher.service.serving import reindex_target

router = APIRouter(tags=["operations"])


class ReindexRequest(BaseModel):
    """The model settings to move to (unset ones stay as they are, but a new embedder takes
    its own defaults for the flip and the ensemble weight) and how."""

    model_config = ConfigDict(extra="forbid")

    detector: DetectorName | None = None
    embedder: EmbedderName | None = None
    embed_flip: bool | None = None
    ensemble_sface_weight: float | None = Field(default=None, gt=0.0, lt=1.0)
    # The learned distance shipped in the package, or none; a fit file is moved to offline
    # (`matcher reindex --projection FILE`): no path on this machine is taken from a request.
    projection_file: Literal["shipped", "none"] | None = None
    dry_run: bool = False
    shadow_sample: int = Field(default=200, ge=0, le=100_000)


class ReindexState(BaseModel):
    running: bool
    to_model: str | None
    done: int
    total: int
    report: dict[str, Any] | None
    error: str | None


def get_runner(request: Request) -> ReindexRunner:
    runner: ReindexRunner = request.app.state.reindex
    return runner


RunnerDep = Annotated[ReindexRunner, Depends(get_runner)]


def _state(status: ReindexStatus) -> ReindexState:
    return ReindexState(running=status.running, to_model=status.to_model, done=status.done,
                        total=status.total, error=status.error,
                        report=None if status.report is None else status.report.as_dict())


@router.post("/admin/reindex", status_code=202, response_model=ReindexState)
async def start_reindex(
    body: ReindexRequest, _: Admin, matcher: MatcherDep, runner: RunnerDep, worker: WorkerDep
) -> ReindexState:
    """Embeds every stored face with the new model beside the live one, compares rank-1 on a
    sample of sightings, then swaps while the service keeps answering. Poll GET for progress.
    Settings the service would refuse at start (an ensemble weight of more than two decimals,
    an embedder without the detector it needs) are a 422, before anything starts. Unset
    settings stay as the serving model has them, except that a new embedder takes its own
    defaults for `embed_flip` and `ensemble_sface_weight` unless they are given. Every other
    server of the store moves to the new model at the swap. A 409 when a reindex runs
    already, here or in another process (`matcher reindex`)."""
    changes = body.model_dump(exclude_none=True, exclude={"dry_run", "shadow_sample"})
    try:
        # The checks of every start, before the job: a target they refuse was swapped in,
        # recorded as the store's model, and the server could not start again.
        target = reindex_target(matcher.settings, changes)
    except ValidationError as error:
        raise RequestValidationError([
            {"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"]}
            for e in error.errors(include_url=False)]) from error
    job = ReindexJob(matcher, target, dry_run=body.dry_run, shadow_sample=body.shadow_sample)
    return _state(await worker(runner.start, job))  # the claim waits on the store


@router.get("/admin/reindex", response_model=ReindexState)
async def reindex_state(_: Admin, runner: RunnerDep) -> ReindexState:
    return _state(runner.status())


@router.delete("/admin/reindex", status_code=202, response_class=Response)
async def stop_reindex(_: Admin, runner: RunnerDep) -> Response:
    """Stops after the current batch; the vectors written so far stay, a new start resumes."""
    runner.stop()
    return Response(status_code=202)
