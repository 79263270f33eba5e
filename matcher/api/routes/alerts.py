"""The public feed tip apps show: active cases, public fields only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from matcher.api.deps import MatcherDep, TipApp, WorkerDep
from matcher.api.params import Id
from matcher.api.schemas import AlertPublic
from matcher.api.urls import alert_photo_url
from matcher.service import alert_feed, public_photo

router = APIRouter(tags=["alerts"])


@router.get("/alerts", response_model=list[AlertPublic])
async def get_alerts(
    response: Response, _: TipApp, matcher: MatcherDep, worker: WorkerDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> list[AlertPublic] | Response:
    feed = await worker(alert_feed, matcher)
    if if_none_match is not None and feed.etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=_headers(feed.etag))
    response.headers.update(_headers(feed.etag))
    # Relative, like every URL the API hands out: one built from the request's Host header
    # would send a tip app's key wherever a forged Host (kept by a cache) pointed it.
    return [AlertPublic(case_id=a.case_id, fields=a.fields,
                        photo_urls=[alert_photo_url(a.case_id, p) for p in a.photo_ids])
            for a in feed.alerts]


def _headers(etag: str) -> dict[str, str]:
    # The public feed may be kept, but checked again at each use (If-None-Match): a copy must
    # never show a case found since.
    return {"ETag": etag, "Cache-Control": "no-cache"}


@router.get("/alerts/{case_id}/photos/{photo_id}", name="get_alert_photo",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
async def get_alert_photo(
    case_id: Id, photo_id: Id, _: TipApp, matcher: MatcherDep, worker: WorkerDep
) -> Response:
    """A case photo its manager made public (404 otherwise, or once the case is not active)."""
    data = await worker(public_photo, matcher, case_id, photo_id)
    return Response(data, media_type="image/jpeg")
