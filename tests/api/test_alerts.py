"""Alerts through the real app over HTTP: issued by a case manager, widening with the hours,
resolved when the case is found or closed, and the feed tip apps read by where they are.

Time comes from a clock the tests move (tests/api/alert_helpers.py), never from sleeping.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from matcher.store import Role
from tests.api.alert_helpers import (
    LONDON,
    alert_case,
    case_ids,
    every_page,
    feed,
    install_clock,
    north_of,
)
from tests.api.builders import case_body, photo_file
from tests.api.conftest import auth
from tests.api.databases import on_both_databases  # noqa: F401
from tests.data import lfw_photos, require_test_data


def test_an_alert_widens_with_the_hours_from_the_last_seen_point(
    client: TestClient, keys: dict[Role, str]
) -> None:
    require_test_data()
    clock = install_clock(client)
    tip, manager = keys[Role.TIP_APP], keys[Role.CASE_MANAGER]
    case = alert_case(client, manager, "Ada", issue=False)
    added = client.post(f"/v1/cases/{case}/photos", files=photo_file(lfw_photos()[0]),
                        headers=auth(manager))
    assert added.status_code == 201, added.text
    issued = client.post(f"/v1/cases/{case}/alert", headers=auth(manager))
    assert issued.status_code == 201, issued.text
    alert = issued.json()
    assert (alert["status"], alert["radius_km"], alert["lat"]) == ("active", 100.0, LONDON[0])
    assert alert["schedule"] == [[0.0, 100.0], [1.0, 500.0], [3.0, None]]

    near, far = north_of(LONDON, 50), north_of(LONDON, 300)
    clock.advance(minutes=30)
    shown = feed(client, tip, near)["alerts"]
    assert [a["case_id"] for a in shown] == [case]
    entry = shown[0]
    assert entry["distance_km"] == pytest.approx(50, abs=0.01)
    assert (entry["radius_km"], entry["status"], entry["outcome"], entry["change"]) == (
        100.0, "active", None, None)
    assert entry["issued_at"] == alert["issued_at"] and entry["alert_id"] == alert["id"]
    assert entry["fields"] == {"name": "Ada"}  # public fields only
    assert len(entry["photo_urls"]) == 1
    photo = client.get(entry["photo_urls"][0], headers=auth(tip))
    assert photo.status_code == 200 and photo.content[:3] == b"\xff\xd8\xff"
    assert feed(client, tip, far)["alerts"] == []  # 300 km: not yet

    clock.advance(hours=1, minutes=30)  # 2 h after the issue
    shown = feed(client, tip, far)["alerts"]
    assert case_ids({"alerts": shown}) == [case] and shown[0]["radius_km"] == 500.0
    assert feed(client, tip, north_of(LONDON, 900))["alerts"] == []
    clock.advance(hours=1)  # 3 h: the whole territory
    everywhere = feed(client, tip, north_of(LONDON, 900))["alerts"]
    assert case_ids({"alerts": everywhere}) == [case] and everywhere[0]["radius_km"] is None


def test_an_elderly_alert_keeps_a_smaller_area(
    client: TestClient, keys: dict[Role, str]
) -> None:
    clock = install_clock(client)
    tip, manager = keys[Role.TIP_APP], keys[Role.CASE_MANAGER]
    child = alert_case(client, manager, "Child")
    elder = alert_case(client, manager, "Elder", category="elderly", age_when_missing=81)
    clock.advance(minutes=30)
    assert case_ids(feed(client, tip, north_of(LONDON, 10))) == [child]  # 5 km the first hour
    assert case_ids(feed(client, tip, north_of(LONDON, 4))) == [child, elder]  # tie: by id
    clock.advance(days=3)
    assert case_ids(feed(client, tip, north_of(LONDON, 99))) == [child, elder]
    assert case_ids(feed(client, tip, north_of(LONDON, 101))) == [child]  # never everywhere


def test_a_found_child_stays_in_the_feed_as_resolved_then_drops_out(
    client: TestClient, keys: dict[Role, str]
) -> None:
    clock = install_clock(client)
    tip, manager = keys[Role.TIP_APP], keys[Role.CASE_MANAGER]
    case = alert_case(client, manager, "Ben")
    point = north_of(LONDON, 20)
    clock.advance(minutes=10)
    assert feed(client, tip, point)["alerts"][0]["status"] == "active"
    clock.advance(minutes=80)  # resolved at 1.5 h, radius 500 km then
    found = client.patch(f"/v1/cases/{case}", json={"status": "found"}, headers=auth(manager))
    assert found.status_code == 200, found.text
    for hours in (0, 23.9):
        clock.advance(hours=hours)
        for where in (point, north_of(LONDON, 450), None):
            (entry,) = feed(client, tip, where)["alerts"]
            assert (entry["status"], entry["outcome"], entry["radius_km"]) == (
                "resolved", "found", 500.0)
            assert entry["resolved_at"] is not None and entry["photo_urls"] == []
            assert entry["fields"] == {"name": "Ben"}  # apps can say who was found
        # Where the area never reached while it was active, nothing was shown: nothing to
        # take down.
        assert feed(client, tip, north_of(LONDON, 600))["alerts"] == []
    clock.advance(hours=0.2)  # 24.1 h after the resolution: gone everywhere
    assert feed(client, tip, point)["alerts"] == []
    assert feed(client, tip)["alerts"] == []
    detail = client.get(f"/v1/cases/{case}/alert", headers=auth(manager)).json()
    assert (detail["status"], detail["outcome"], detail["radius_km"]) == (
        "resolved", "found", 500.0)


def test_updated_since_returns_exactly_the_changes(
    client: TestClient, keys: dict[Role, str]
) -> None:
    clock = install_clock(client)
    tip, manager = keys[Role.TIP_APP], keys[Role.CASE_MANAGER]
    app = north_of(LONDON, 10)  # where the tip app is
    near = alert_case(client, manager, "Near")  # 10 km away
    later = alert_case(client, manager, "Later", at=north_of(LONDON, 300))  # 290 km away
    alert_case(client, manager, "Far", at=north_of(LONDON, -700))  # 710 km: not within 3 h
    clock.advance(minutes=30)
    first = feed(client, tip, app)
    assert case_ids(first) == [near]
    cursor = first["changes_cursor"]
    assert feed(client, tip, app, updated_since=cursor)["alerts"] == []  # nothing yet

    clock.advance(minutes=10)
    new = alert_case(client, manager, "New", at=north_of(LONDON, 15))
    clock.advance(minutes=50)  # 1.5 h after the first three: 500 km
    changes = feed(client, tip, app, updated_since=cursor)
    assert [(a["case_id"], a["change"]) for a in changes["alerts"]] == [
        (new, "issued"), (later, "widened")]  # nearest first; "Near" did not change
    cursor = changes["changes_cursor"]
    assert feed(client, tip, app, updated_since=cursor)["alerts"] == []  # said once

    client.patch(f"/v1/cases/{near}", json={"status": "found"}, headers=auth(manager))
    withdrawn = client.delete(f"/v1/cases/{later}/alert", headers=auth(manager))
    assert withdrawn.status_code == 200 and withdrawn.json()["outcome"] == "cancelled"
    changes = feed(client, tip, app, updated_since=cursor)
    assert [(a["case_id"], a["change"], a["outcome"]) for a in changes["alerts"]] == [
        (near, "resolved", "found"), (later, "resolved", "cancelled")]
    assert feed(client, tip, app, updated_since=changes["changes_cursor"])["alerts"] == []

    # Chained polls said what a full listing now says, and nothing more.
    listing, _ = every_page(client, tip, app)
    assert {(a["case_id"], a["status"]) for a in listing} == {
        (near, "resolved"), (later, "resolved"), (new, "active")}


def test_an_edit_of_what_an_alert_shows_is_an_update_in_the_feed(
    client: TestClient, keys: dict[Role, str]
) -> None:
    """Apps must hear when a name is corrected, a photo added or a field withdrawn; an edit
    apps cannot see (a field not public) is no change."""
    require_test_data()
    clock = install_clock(client)
    tip, manager_key = keys[Role.TIP_APP], keys[Role.CASE_MANAGER]
    manager = auth(manager_key)
    app = north_of(LONDON, 10)
    edited = alert_case(client, manager_key, "Edited")
    quiet = alert_case(client, manager_key, "Quiet")
    clock.advance(minutes=5)
    cursor = feed(client, tip, app)["changes_cursor"]

    def changes() -> list[tuple[int, str, dict[str, Any], int]]:
        nonlocal cursor
        page = feed(client, tip, app, updated_since=cursor)
        cursor = page["changes_cursor"]
        return [(a["case_id"], a["change"], a["fields"], len(a["photo_urls"]))
                for a in page["alerts"]]

    hidden = client.patch(f"/v1/cases/{edited}", json={"description": "in a red coat"},
                          headers=manager)
    assert hidden.status_code == 200, hidden.text
    assert changes() == []  # the description is not public
    renamed = client.patch(f"/v1/cases/{edited}", json={"name": "Edith"}, headers=manager)
    assert renamed.status_code == 200, renamed.text
    assert changes() == [(edited, "updated", {"name": "Edith"}, 0)]
    assert changes() == []  # said once
    added = client.post(f"/v1/cases/{edited}/photos", files=photo_file(lfw_photos()[0]),
                        headers=manager)
    assert added.status_code == 201, added.text
    assert changes() == [(edited, "updated", {"name": "Edith"}, 1)]
    photo_id = added.json()["photo_id"]
    narrowed = client.patch(f"/v1/cases/{edited}", json={"public_fields": ["name"]},
                            headers=manager)
    assert narrowed.status_code == 200, narrowed.text
    assert changes() == [(edited, "updated", {"name": "Edith"}, 0)]  # photos withdrawn

    # An active alert shows something: making nothing public is refused, and changes nothing.
    refused = client.patch(f"/v1/cases/{edited}", json={"public_fields": []}, headers=manager)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "alert_refused"
    assert "withdraw the alert first" in refused.json()["detail"]
    assert changes() == []
    assert client.delete(f"/v1/cases/{edited}/photos/{photo_id}",
                         headers=manager).status_code == 204
    assert changes() == []  # the photos are not public any more: apps see the same
    listing, _ = every_page(client, tip, app)
    assert {a["case_id"]: a["fields"] for a in listing} == {
        edited: {"name": "Edith"}, quiet: {"name": "Quiet"}}


def test_the_territory_feed_lists_every_active_alert_newest_first(
    client: TestClient, keys: dict[Role, str]
) -> None:
    clock = install_clock(client)
    tip, manager = keys[Role.TIP_APP], keys[Role.CASE_MANAGER]
    first = alert_case(client, manager, "First")
    second = alert_case(client, manager, "Second", at=north_of(LONDON, 800))
    quiet = alert_case(client, manager, "Not issued", issue=False)
    clock.advance(minutes=1)
    page = feed(client, tip)
    assert case_ids(page) == [second, first]  # not the case without an alert
    assert all(a["distance_km"] is None for a in page["alerts"])
    assert quiet not in case_ids(page)
    cursor = page["changes_cursor"]
    third = alert_case(client, manager, "Third", at=north_of(LONDON, -2000))
    assert [(a["case_id"], a["change"]) for a in feed(
        client, tip, updated_since=cursor)["alerts"]] == [(third, "issued")]


def test_pages_neither_skip_nor_repeat_while_the_feed_changes(
    client: TestClient, keys: dict[Role, str]
) -> None:
    clock = install_clock(client)
    tip, manager = keys[Role.TIP_APP], keys[Role.CASE_MANAGER]
    cases = [alert_case(client, manager, f"C{km}", at=north_of(LONDON, km))
             for km in (40, 10, 30, 20, 50, 60, 70)]
    clock.advance(minutes=5)
    page = feed(client, tip, LONDON, limit=3)
    seen = case_ids(page)
    assert seen == [cases[1], cases[3], cases[2]]  # 10, 20, 30 km
    # Meanwhile: one at 35 km is issued, the one at 60 km found; the listing goes on as it
    # was when its first page was read.
    alert_case(client, manager, "C35", at=north_of(LONDON, 35))
    client.patch(f"/v1/cases/{cases[5]}", json={"status": "found"}, headers=auth(manager))
    clock.advance(hours=2)
    while page["next_cursor"] is not None:
        page = feed(client, tip, cursor=page["next_cursor"], limit=3)
        seen += case_ids(page)
    assert seen == [cases[i] for i in (1, 3, 2, 0, 4, 5, 6)]
    assert all(a["status"] == "active" for a in page["alerts"])


def test_the_etag_answers_304_until_the_page_changes(
    client: TestClient, keys: dict[Role, str]
) -> None:
    clock = install_clock(client)
    tip, manager = keys[Role.TIP_APP], keys[Role.CASE_MANAGER]
    case = alert_case(client, manager, "Eve")
    point = north_of(LONDON, 200)
    clock.advance(minutes=5)
    response = client.get("/v1/alerts", params={"lat": point[0], "lon": point[1]},
                          headers=auth(tip))
    assert response.headers["Cache-Control"] == "no-cache"  # kept, but asked again each time
    etag = response.headers["ETag"]

    def again() -> Any:
        return client.get("/v1/alerts", params={"lat": point[0], "lon": point[1]},
                          headers={**auth(tip), "If-None-Match": etag})

    assert again().status_code == 304
    clock.advance(minutes=50)
    assert again().status_code == 304  # still 100 km
    clock.advance(minutes=10)  # 1 h: 500 km, the alert reaches the point
    widened = again()
    assert widened.status_code == 200 and case_ids(widened.json()) == [case]
    etag = widened.headers["ETag"]
    client.patch(f"/v1/cases/{case}", json={"public_fields": ["name", "sex"]},
                 headers=auth(manager))
    assert again().status_code == 200  # what it shows changed


def test_issuing_needs_an_active_case_with_a_last_seen_point_and_moment(
    client: TestClient, keys: dict[Role, str]
) -> None:
    install_clock(client)
    manager = auth(keys[Role.CASE_MANAGER])
    bare = client.post("/v1/cases", json=case_body("Bare"), headers=manager).json()["id"]
    refused = client.post(f"/v1/cases/{bare}/alert", headers=manager)
    assert refused.status_code == 409 and refused.json()["error"] == "alert_refused"
    assert "last_seen_at" in refused.json()["detail"]
    case = alert_case(client, keys[Role.CASE_MANAGER], "Dup")
    twice = client.post(f"/v1/cases/{case}/alert", headers=manager)
    assert twice.status_code == 409 and twice.json()["error"] == "alert_exists"
    silent = alert_case(client, keys[Role.CASE_MANAGER], "Silent", issue=False)
    client.patch(f"/v1/cases/{silent}", json={"public_fields": []}, headers=manager)
    assert client.post(f"/v1/cases/{silent}/alert", headers=manager).json()["detail"] \
        .endswith("set its public_fields first")
    client.patch(f"/v1/cases/{case}", json={"status": "closed"}, headers=manager)
    closed = client.post(f"/v1/cases/{case}/alert", headers=manager)
    assert closed.status_code == 409 and "closed" in closed.json()["detail"]
    assert client.get(f"/v1/cases/{case}/alert", headers=manager).json()["outcome"] == \
        "cancelled"
    assert client.get(f"/v1/cases/{bare}/alert", headers=manager).status_code == 404
    assert client.delete(f"/v1/cases/{bare}/alert", headers=manager).status_code == 404
    assert client.post("/v1/cases/99999/alert", headers=manager).status_code == 404
    # Made active again, the case may have a new alert: a new id, from the case as it is.
    client.patch(f"/v1/cases/{case}", json={"status": "active"}, headers=manager)
    again = client.post(f"/v1/cases/{case}/alert", headers=manager)
    assert again.status_code == 201 and again.json()["status"] == "active"


@pytest.mark.parametrize(("params", "status", "error"), [
    ({"lat": 51.5}, 422, "invalid"),  # lat without lon
    ({"lat": 91, "lon": 0}, 422, "invalid_request"),
    ({"limit": 0}, 422, "invalid_request"),
    ({"limit": 501}, 422, "invalid_request"),
    ({"updated_since": "nonsense"}, 422, "invalid"),
    ({"updated_since": "c1.!!!"}, 422, "invalid"),
    ({"cursor": "c1.eyJzIjoxLCJ0IjoxfQ"}, 422, "invalid"),  # a changes cursor as a page
    ({"cursor": "p1.bm90IGpzb24"}, 422, "invalid"),
    ({"updated_since": "x" * 1001}, 422, "invalid_request"),
])
def test_bad_feed_requests_get_a_clear_4xx(
    client: TestClient, keys: dict[Role, str], params: dict[str, Any], status: int, error: str
) -> None:
    response = client.get("/v1/alerts", params=params, headers=auth(keys[Role.TIP_APP]))
    assert response.status_code == status, response.text
    assert response.json()["error"] == error


def test_a_cursor_lives_as_long_as_resolved_alerts_stay(
    client: TestClient, keys: dict[Role, str]
) -> None:
    clock = install_clock(client)
    tip = keys[Role.TIP_APP]
    alert_case(client, keys[Role.CASE_MANAGER], "Old")
    alert_case(client, keys[Role.CASE_MANAGER], "Older")
    page = feed(client, tip, LONDON, limit=1)
    assert page["next_cursor"] is not None
    clock.advance(hours=23)
    assert feed(client, tip, LONDON, updated_since=page["changes_cursor"])["alerts"] == []
    clock.advance(hours=2)
    for params in ({"updated_since": page["changes_cursor"]}, {"cursor": page["next_cursor"]}):
        expired = client.get("/v1/alerts", params=params, headers=auth(tip))
        assert expired.status_code == 410, (params, expired.text)
        assert expired.json()["error"] == "cursor_expired"


def test_an_erased_case_is_taken_down_everywhere_without_its_place(
    client: TestClient, keys: dict[Role, str]
) -> None:
    clock = install_clock(client)
    tip, manager = keys[Role.TIP_APP], keys[Role.CASE_MANAGER]
    case = alert_case(client, manager, "Erased")
    cursor = feed(client, tip, LONDON)["changes_cursor"]
    assert client.delete(f"/v1/cases/{case}", headers=auth(manager)).status_code == 204
    clock.advance(minutes=1)
    for where in (LONDON, (-33.87, 151.21)):  # and Sydney
        (entry,) = feed(client, tip, where, updated_since=cursor)["alerts"]
        assert (entry["case_id"], entry["change"], entry["outcome"]) == (
            case, "resolved", "cancelled")
        assert entry["fields"] == {} and entry["distance_km"] is None


def test_every_alert_change_is_audited(client: TestClient, keys: dict[Role, str]) -> None:
    install_clock(client)
    manager = keys[Role.CASE_MANAGER]
    first = alert_case(client, manager, "One")
    second = alert_case(client, manager, "Two")
    client.patch(f"/v1/cases/{first}", json={"status": "found"}, headers=auth(manager))
    client.delete(f"/v1/cases/{second}/alert", headers=auth(manager))
    client.get(f"/v1/cases/{second}/alert", headers=auth(keys[Role.INVESTIGATOR]))
    trail = client.get("/v1/audit", params={"object_type": "alert"},
                       headers=auth(keys[Role.ADMIN])).json()["items"]
    assert [(e["action"], e["detail"]["case_id"], e["detail"].get("outcome"), e["role"])
            for e in trail] == [
        ("create", first, None, "case_manager"), ("create", second, None, "case_manager"),
        ("resolve", first, "found", "case_manager"),
        ("resolve", second, "cancelled", "case_manager"),
        ("read", second, None, "investigator")]
