"""Alerts: case managers issue and withdraw them; tip apps read the feed by where they are."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from matcher.api.alert_schemas import AlertPage, AlertPublic, FeedAlert
from matcher.api.deps import CaseManager, CaseReader, MatcherDep, TipApp, WorkerDep
from matcher.api.params import Id
from matcher.api.urls import alert_photo_url
from matcher.service import (
    AlertFeed,
    FeedQuery,
    alert_feed,
    issue_alert,
    public_photo,
    read_alert,
    withdraw_alert,
)
from matcher.service.alert_feed import MAX_LIMIT

router = APIRouter(tags=["alerts"])

CURSOR_MAX = 1000  # an encoded cursor is about 200 characters


@router.get("/alerts", response_model=AlertPage)
async def get_alerts(
    response: Response, _: TipApp, matcher: MatcherDep, worker: WorkerDep,
    lat: Annotated[float | None, Query(ge=-90, le=90, description=(
        "with lon: only the alerts whose area covers this point now, nearest first"))] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    updated_since: Annotated[str | None, Query(max_length=CURSOR_MAX, description=(
        "a `changes_cursor`: only what changed since it (issued, widened into the point, "
        "resolved)"))] = None,
    cursor: Annotated[str | None, Query(max_length=CURSOR_MAX, description=(
        "a `next_cursor`: the next page"))] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    if_none_match: Annotated[str | None, Header()] = None,
) -> AlertPage | Response:
    """The alerts shown where the app is (or everywhere, without a point), a page at a time."""
    query = FeedQuery(lat=lat, lon=lon, updated_since=updated_since, cursor=cursor, limit=limit)
    feed = await worker(alert_feed, matcher, query)
    if if_none_match is not None and feed.etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=_headers(feed.etag))
    response.headers.update(_headers(feed.etag))
    return _page(feed)


def _page(feed: AlertFeed) -> AlertPage:
    # Relative, like every URL the API hands out: one built from the request's Host header
    # would send a tip app's key wherever a forged Host (kept by a cache) pointed it.
    return AlertPage(alerts=[FeedAlert(
        alert_id=a.alert_id, case_id=a.case_id, status=a.status, outcome=a.outcome,
        issued_at=a.issued_at, resolved_at=a.resolved_at, radius_km=a.radius_km,
        distance_km=a.distance_km, change=a.change, fields=a.fields,
        photo_urls=[alert_photo_url(a.case_id, p) for p in a.photo_ids]) for a in feed.alerts],
        next_cursor=feed.next_cursor, changes_cursor=feed.changes_cursor)


def _headers(etag: str) -> dict[str, str]:
    # The public feed may be kept, but checked again at each use (If-None-Match): a copy must
    # never show a case found since.
    return {"ETag": etag, "Cache-Control": "no-cache"}


@router.get("/alerts/{case_id}/photos/{photo_id}", name="get_alert_photo",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
async def get_alert_photo(
    case_id: Id, photo_id: Id, _: TipApp, matcher: MatcherDep, worker: WorkerDep
) -> Response:
    """A case photo its manager made public, while the case has an active alert (404
    otherwise)."""
    data = await worker(public_photo, matcher, case_id, photo_id)
    return Response(data, media_type="image/jpeg")


@router.post("/cases/{case_id}/alert", status_code=201, response_model=AlertPublic)
async def post_alert(
    case_id: Id, actor: CaseManager, matcher: MatcherDep, worker: WorkerDep
) -> AlertPublic:
    """Issues an alert at the case's last-seen point and moment (both required), shown to the
    apps whose point its area covers, widening with the hours (409 `alert_refused` when the
    case is not active, lacks them or publishes nothing; `alert_exists` when it has one)."""
    return AlertPublic.model_validate(await worker(issue_alert, matcher, case_id, actor))


@router.get("/cases/{case_id}/alert", response_model=AlertPublic)
async def get_alert(
    case_id: Id, actor: CaseReader, matcher: MatcherDep, worker: WorkerDep
) -> AlertPublic:
    """The case's newest alert, active or resolved."""
    return AlertPublic.model_validate(await worker(read_alert, matcher, case_id, actor))


@router.delete("/cases/{case_id}/alert", response_model=AlertPublic)
async def delete_alert(
    case_id: Id, actor: CaseManager, matcher: MatcherDep, worker: WorkerDep
) -> AlertPublic:
    """Withdraws the active alert (resolved as cancelled) while the case stays open; the
    apps are told to take it down. Marking the case found or closed does this by itself."""
    return AlertPublic.model_validate(await worker(withdraw_alert, matcher, case_id, actor))
