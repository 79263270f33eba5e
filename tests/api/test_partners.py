"""Partners through the real app: registration, which partner hears of which alert event (the
outbox, read through the deliveries log), signatures, removal and /metrics. The webhook thread
is kept idle (a poll of a minute) and the clock is the tests': every row stays pending, and
widenings are told when the test runs the round. Live delivery: test_partner_delivery.py."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from matcher.service import new_key
from matcher.service.webhooks import Dispatcher, sign, tell_widenings
from matcher.store import Delivery, Role
from tests.api.alert_helpers import LONDON, FakeClock, alert_case, north_of
from tests.api.conftest import auth, matcher_of
from tests.api.databases import on_both_databases  # noqa: F401
from tests.api.partner_helpers import readme_verify

HOOK = "http://127.0.0.1:9/hooks"  # discard: nothing is sent in these tests


@pytest.fixture
def idle(make_client: Callable[..., TestClient]) -> dict[str, Any]:
    client = make_client(partner_poll_s=60)
    clock = FakeClock()
    matcher_of(client).clock = clock
    keys = {role: new_key(matcher_of(client).sessions, role, role.value)[1] for role in Role}
    return {"client": client, "clock": clock, "keys": keys}


def _partner(client: TestClient, admin: str, **body: Any) -> dict[str, Any]:
    made = client.post("/v1/partners", json={"name": "News", "url": HOOK,
                                             "categories": ["child"], **body},
                       headers=auth(admin))
    assert made.status_code == 201, made.text
    partner: dict[str, Any] = made.json()
    return partner


def _log(client: TestClient, admin: str, partner: int) -> list[tuple[int, str, str]]:
    """(alert id, kind, status) of the partner's deliveries, oldest first."""
    rows = client.get(f"/v1/partners/{partner}/deliveries", headers=auth(admin)).json()
    return [(r["alert_id"], r["kind"], r["status"]) for r in reversed(rows)]


def test_a_partner_is_registered_by_an_admin_with_a_secret_shown_once(
    idle: dict[str, Any]
) -> None:
    client, keys = idle["client"], idle["keys"]
    admin = keys[Role.ADMIN]
    made = _partner(client, admin, home={"lat": 51.5, "lon": -0.1, "radius_km": 30})
    assert made["secret"].startswith("whsec_") and made["home"]["radius_km"] == 30
    listed = client.get("/v1/partners", headers=auth(admin)).json()
    assert [p["id"] for p in listed] == [made["id"]] and "secret" not in listed[0]
    for role in (Role.TIP_APP, Role.INVESTIGATOR, Role.CASE_MANAGER):
        assert client.post("/v1/partners", json={"name": "x", "url": HOOK, "categories": [
            "child"]}, headers=auth(keys[role])).status_code == 403
    for body, error in [
        ({"url": "ftp://example.org/x"}, "invalid"),
        ({"url": "https://user:pw@example.org/x"}, "invalid"),
        ({"url": "/relative"}, "invalid"),
        ({"categories": []}, "invalid_request"),
        ({"categories": ["pets"]}, "invalid_request"),
        ({"home": {"lat": 51.5, "lon": -0.1}}, "invalid_request"),
        ({"home": {"lat": 51.5, "lon": -0.1, "radius_km": 0}}, "invalid_request"),
        ({"secret": "mine"}, "invalid_request"),
    ]:
        refused = client.post("/v1/partners", json={"name": "x", "url": HOOK,
                                                    "categories": ["child"], **body},
                              headers=auth(admin))
        assert refused.status_code == 422 and refused.json()["error"] == error, body
    assert client.get("/v1/partners/999/deliveries", headers=auth(admin)).status_code == 404
    gone = client.delete(f"/v1/partners/{made['id']}", headers=auth(admin))
    assert gone.status_code == 200 and gone.json()["revoked_at"] is not None


def test_each_partner_hears_of_the_alerts_that_reach_it_in_order(
    idle: dict[str, Any]
) -> None:
    client, clock, keys = idle["client"], idle["clock"], idle["keys"]
    admin, manager = keys[Role.ADMIN], keys[Role.CASE_MANAGER]
    matcher = matcher_of(client)
    everywhere = _partner(client, admin)["id"]
    far = north_of(LONDON, 1000)
    away = _partner(client, admin, home={"lat": far[0], "lon": far[1], "radius_km": 10})["id"]
    nearby = _partner(client, admin, home={"lat": LONDON[0], "lon": LONDON[1],
                                           "radius_km": 5})["id"]
    elderly_only = _partner(client, admin, categories=["elderly"])["id"]
    case = alert_case(client, manager, "Ada")
    alert = client.get(f"/v1/cases/{case}/alert", headers=auth(manager)).json()["id"]
    assert tell_widenings(matcher) == 0  # nothing due yet
    clock.advance(hours=1, minutes=1)
    assert tell_widenings(matcher) == 1
    assert tell_widenings(matcher) == 0  # told once
    # What the alert shows changed: those told of it hear (not yet "away", 1,000 km off).
    renamed = client.patch(f"/v1/cases/{case}", json={"name": "Ada King"},
                           headers=auth(manager))
    assert renamed.status_code == 200, renamed.text
    clock.advance(hours=2)
    tell_widenings(matcher)
    clock.advance(hours=5)
    assert tell_widenings(matcher) == 0  # the whole territory: nothing more to tell
    client.patch(f"/v1/cases/{case}", json={"status": "found"}, headers=auth(manager))
    assert _log(client, admin, everywhere) == [
        (alert, "issued", "pending"), (alert, "widened", "pending"),
        (alert, "updated", "pending"), (alert, "widened", "pending"),
        (alert, "resolved", "pending")]
    # 1,000 km away: first told when the area became the whole territory, at 3 h.
    assert _log(client, admin, away) == [(alert, "widened", "pending"),
                                         (alert, "resolved", "pending")]
    assert _log(client, admin, nearby) == [(alert, "issued", "pending"),
                                           (alert, "updated", "pending"),
                                           (alert, "resolved", "pending")]
    assert _log(client, admin, elderly_only) == []
    # The body is the alert as the feed shows it, with its area, fixed when it happened.
    rows = client.get(f"/v1/partners/{everywhere}/deliveries", headers=auth(admin)).json()
    assert all(r["attempts"] == 0 and r["next_attempt_at"] for r in rows)
    with matcher.sessions() as session:
        sent = session.query(Delivery).filter_by(partner_id=everywhere).order_by(Delivery.id)
        names = [(row.kind, json.loads(row.body)["alert"]["fields"]["name"]) for row in sent]
    assert names[1:3] == [("widened", "Ada"), ("updated", "Ada King")]
    trail = client.get("/v1/audit", params={"object_type": "alert"},
                       headers=auth(admin)).json()["items"]
    assert [(e["action"], e["detail"].get("partners_told")) for e in trail] == [
        ("create", 2), ("read", None), ("notify", 1), ("update", 2), ("notify", 2),
        ("resolve", 3)]


def test_a_body_is_signed_as_the_readme_checks_and_a_tampered_one_fails(
    idle: dict[str, Any]
) -> None:
    client, keys = idle["client"], idle["keys"]
    secret = _partner(client, keys[Role.ADMIN])["secret"]
    alert_case(client, keys[Role.CASE_MANAGER], "Ada", at=north_of(LONDON, 3))
    matcher = matcher_of(client)
    with matcher.sessions() as session:
        (row,) = session.query(Delivery).all()
        body = row.body.encode()
    event = json.loads(body)
    assert event["type"] == "alert.issued" and event["event_id"] == row.event_id
    assert event["alert"]["fields"] == {"name": "Ada"} and event["alert"]["area"] == {
        "lat": pytest.approx(north_of(LONDON, 3)[0]), "lon": LONDON[1], "radius_km": 100.0}
    verify = readme_verify()
    now = int(time.time())
    header = sign(secret, now, body)
    assert verify(secret, header, body)
    assert not verify(secret, header, body.replace(b'"Ada"', b'"Eve"'))
    assert not verify("whsec_another", header, body)
    assert not verify(secret, sign(secret, now - 3600, body), body)  # an old one: replayed


def test_a_removed_partner_gets_nothing_more_and_metrics_show_the_lag(
    idle: dict[str, Any]
) -> None:
    client, clock, keys = idle["client"], idle["clock"], idle["keys"]
    admin, manager = keys[Role.ADMIN], keys[Role.CASE_MANAGER]
    kept, removed = _partner(client, admin)["id"], _partner(client, admin)["id"]
    alert_case(client, manager, "Ada")
    clock.advance(minutes=10)
    metrics = client.get("/metrics", headers=auth(admin)).text
    assert f'matcher_partner_delivery_lag_seconds{{partner="{kept}"}} 600.0' in metrics
    assert (f'matcher_partner_deliveries{{partner="{kept}",status="pending"}} 1.0'
            in metrics)
    client.delete(f"/v1/partners/{removed}", headers=auth(admin))
    assert _log(client, admin, removed)[0][2] == "cancelled"
    alert_case(client, manager, "Ben")
    assert len(_log(client, admin, removed)) == 1 and len(_log(client, admin, kept)) == 2
    metrics = client.get("/metrics", headers=auth(admin)).text
    assert f'partner="{removed}"' not in metrics


def test_the_webhook_thread_stops_cleanly(idle: dict[str, Any]) -> None:
    dispatcher = Dispatcher(matcher_of(idle["client"]))
    dispatcher.start()
    dispatcher.wake()
    dispatcher.stop()
