"""Helpers of the alert tests: a clock the tests move (no sleeping), points at a distance,
cases with a last-seen point and moment, and the feed read as a tip app reads it."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from fastapi.testclient import TestClient

from matcher.service.alert_areas import EARTH_RADIUS_KM
from tests.api.builders import case_body
from tests.api.conftest import auth, matcher_of

LONDON = (51.5074, -0.1278)


class FakeClock:
    """What time the app thinks it is; `advance` moves it."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


def install_clock(client: TestClient) -> FakeClock:
    clock = FakeClock()
    matcher_of(client).clock = clock
    return clock


def north_of(point: tuple[float, float], km: float) -> tuple[float, float]:
    """The point `km` due north along the meridian (great-circle distance exactly `km`)."""
    return point[0] + math.degrees(km / EARTH_RADIUS_KM), point[1]


def alert_case(client: TestClient, manager: str, name: str,
               at: tuple[float, float] = LONDON, seen: dt.datetime | None = None,
               category: str = "child", issue: bool = True, **fields: Any) -> int:
    """A case last seen at `at` (an hour before `seen`, default now), publishing its name and
    photos; with an alert issued unless `issue` is False. Returns the case id."""
    seen = seen or dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    body = case_body(name, category=category, last_seen_lat=at[0], last_seen_lon=at[1],
                     last_seen_at=seen.isoformat(), public_fields=["name", "photos"], **fields)
    made = client.post("/v1/cases", json=body, headers=auth(manager))
    assert made.status_code == 201, made.text
    case_id = int(made.json()["id"])
    if issue:
        issued = client.post(f"/v1/cases/{case_id}/alert", headers=auth(manager))
        assert issued.status_code == 201, issued.text
    return case_id


def feed(client: TestClient, tip: str, point: tuple[float, float] | None = None,
         **params: Any) -> dict[str, Any]:
    """One page of the feed as a tip app asks for it."""
    query = dict(params)
    if point is not None:
        query.update(lat=point[0], lon=point[1])
    response = client.get("/v1/alerts", params=query, headers=auth(tip))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def case_ids(page: dict[str, Any]) -> list[int]:
    return [int(alert["case_id"]) for alert in page["alerts"]]


def every_page(client: TestClient, tip: str, point: tuple[float, float] | None = None,
               **params: Any) -> tuple[list[dict[str, Any]], str]:
    """Every alert of a listing, page after page; and its changes cursor."""
    page = feed(client, tip, point, **params)
    alerts, cursor = list(page["alerts"]), page["changes_cursor"]
    while page["next_cursor"] is not None:
        page = feed(client, tip, cursor=page["next_cursor"])
        assert page["changes_cursor"] == cursor  # one listing, one view
        alerts += page["alerts"]
    return alerts, cursor
