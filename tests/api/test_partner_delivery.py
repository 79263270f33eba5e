"""Alert events reach partners' webhooks over real HTTP on both sides: a live `matcher serve`
and partner receivers on real ports (tests/api/partner_helpers.py). One partner refuses for a
while, then is down across a `kill -9` of matcher and its restart, then comes back; another is
slow past the timeout throughout. Every event reaches the first, in order per alert, each
acknowledged exactly once, every signature valid by the README's check; the slow one never
held it up.

Areas widen in seconds here (a schedule of 3.6 s and 7.2 s steps), and retries come after
0.2 s to 1 s: the test waits on real time, a few seconds at a time.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from matcher.store import Role
from tests.api.partner_helpers import Receiver, wait_for
from tests.data import lfw_photos, require_test_data
from tests.live import LiveServer

SCHEDULE = "[[0, 100], [0.001, 500], [0.002, null]]"  # hours: 3.6 s and 7.2 s


def _case(manager: httpx.Client, name: str) -> int:
    seen = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    made = manager.post("/v1/cases", json={
        "category": "child", "name": name, "age_when_missing": 8, "missing_since": "2020-05-01",
        "last_seen_lat": 51.5, "last_seen_lon": -0.12, "last_seen_at": seen,
        "public_fields": ["name", "photos"]})
    assert made.status_code == 201, made.text
    case_id = int(made.json()["id"])
    issued = manager.post(f"/v1/cases/{case_id}/alert")
    assert issued.status_code == 201, issued.text
    return case_id


def _log(admin: httpx.Client, partner: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = admin.get(f"/v1/partners/{partner}/deliveries",
                                           params={"limit": 500}).json()
    return sorted(rows, key=lambda row: row["id"])


def _metric(server: LiveServer, line_start: str) -> float:
    text = httpx.get(f"{server.base}/metrics", timeout=10).text
    return float(next(line for line in text.splitlines() if line.startswith(line_start))
                 .split()[-1])


def test_every_event_arrives_once_in_order_across_refusals_a_kill_and_a_restart(
    tmp_path: Path, settings: Any, db_url: str | None
) -> None:
    require_test_data()
    hooks = Receiver(mode="refuse")
    slow = Receiver(mode="slow", delay_s=3)
    store = {} if db_url is None else {"database_url": db_url}  # SQLite, then PostgreSQL
    server = LiveServer(tmp_path / "data", cache_from=settings.cache_dir,
                        alert_schedule_child=SCHEDULE, partner_poll_s="0.2",
                        partner_retry_first_s="0.2", partner_retry_max_s="1",
                        partner_timeout_s="1", **store)
    try:
        server.start()
        with server.client(server.admin) as admin:
            made = admin.post("/v1/partners", json={
                "name": "news", "url": hooks.url, "categories": ["child"]}).json()
            hooks.secret, partner = made["secret"], made["id"]
            made = admin.post("/v1/partners", json={
                "name": "slow maps", "url": slow.url, "categories": ["child"]}).json()
            slow.secret, slow_partner = made["secret"], made["id"]
        with server.client(server.new_key(Role.CASE_MANAGER, "desk")) as manager:
            first = _case(manager, "Ada")
            assert manager.patch(f"/v1/cases/{first}", json={"status": "found"}).status_code \
                == 200  # before its area grows: issued, then resolved
            second = _case(manager, "Ben")
            photo = {"photo": ("p.jpg", lfw_photos()[0].path.read_bytes(), "image/jpeg")}
            assert manager.post(f"/v1/cases/{second}/photos", files=photo).status_code == 201
            # Refused for a while: each attempt answered 503, the events wait.
            wait_for(lambda: len(hooks.refused()) >= 3, 20, "three refused attempts")
            assert not hooks.acknowledged()
            hooks.mode = "accept"
            # The slow partner times out at every attempt meanwhile: it holds up only itself.
            wait_for(lambda: {r.kind for r in hooks.acknowledged()} >= {
                "alert.issued", "alert.resolved", "alert.widened"}, 15, "the first events")
            # Down, then matcher killed with events waiting, restarted, and still down.
            hooks.stop()
            assert manager.patch(f"/v1/cases/{second}", json={"status": "closed"}) \
                .status_code == 200
            third, third_at = _case(manager, "Cy"), time.monotonic()
            time.sleep(1)
        server.kill()
        server.start()
        time.sleep(2)  # the restarted server finds the partner down too
        hooks.start()  # back, on the same port

        def everywhere_and_delivered(rows: list[dict[str, Any]]) -> bool:
            # The third alert covers the whole territory 7.2 s after its issue; the partners
            # hear of the area as it is when a round sees it (a step passed while matcher was
            # down is not told on its own).
            return (time.monotonic() - third_at > 9 and all(
                row["status"] == "delivered" for row in rows) and any(
                row["alert_id"] == third and row["kind"] == "widened" for row in rows))

        with server.client(server.admin) as admin:
            wait_for(lambda: everywhere_and_delivered(_log(admin, partner)), 60,
                     "every event delivered")
            log = _log(admin, partner)
            slow_log = _log(admin, slow_partner)
        lag = _metric(server, f'matcher_partner_delivery_lag_seconds{{partner="{partner}"}}')
        failing = _metric(server, "matcher_partner_delivery_failed_attempts"
                                  f'{{partner="{slow_partner}"}}')
    finally:
        server.stop()
        hooks.stop()
        slow.stop()

    acked = hooks.acknowledged()
    # Each event of the log acknowledged exactly once, and nothing else.
    assert Counter(r.event_id for r in acked) == Counter(row["event_id"] for row in log)
    assert all(r.valid and r.header_event_id == r.event_id for r in hooks.received)
    # In order per alert: the order of the log (the order the events happened in).
    for alert in {row["alert_id"] for row in log}:
        assert [r.event_id for r in acked if r.alert_id == alert] == [
            row["event_id"] for row in log if row["alert_id"] == alert]
    kinds = {alert: [row["kind"] for row in log if row["alert_id"] == alert]
             for alert in (1, 2, 3)}
    assert kinds[1] == ["issued", "resolved"]
    assert kinds[2][0] == "issued" and kinds[2][-1] == "resolved" and "widened" in kinds[2]
    assert kinds[3] in (["issued", "widened"], ["issued", "widened", "widened"])
    last = json.loads([r.body for r in acked if r.alert_id == third][-1])
    assert last["type"] == "alert.widened" and last["alert"]["area"]["radius_km"] is None
    assert max(row["attempts"] for row in log) >= 3  # the refused and down ones were retried
    assert all(row["status"] == "pending" for row in slow_log)
    assert slow_log[0]["attempts"] >= 2 and failing >= 2  # it timed out, again and again
    assert lag == 0.0
    # A tampered body fails the README's check.
    tampered = acked[0].body.replace(b'"alert.', b'"alert.x')
    assert not hooks.verify(hooks.secret, acked[0].signature, tampered)
