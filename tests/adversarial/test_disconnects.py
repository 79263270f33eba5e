"""Clients that hang up in the middle of an upload, against the shared server over raw sockets:
a client event, logged at info and counted as 499, never an ERROR or a 500 (issue 19, defect
3: every dropped mobile upload looked like a server fault, and anyone could inflate the 5xx
rate that alerts are built on)."""

from __future__ import annotations

import time

import httpx

from tests.adversarial.harness import REQUESTS, Target, cast, samples
from tests.adversarial.sockets import hang_up, upload_body, upload_headers

HANG_UPS = 3
PERSON = 16  # of the cast


def _posts(target: Target, route: str) -> dict[str, float]:
    """The count of POSTs to the route by status."""
    text = httpx.get(f"{target.server.base}/metrics", timeout=30).text
    return {labels["status"]: value for labels, value in samples(text, REQUESTS + "_count")
            if labels["method"] == "POST" and labels["route"] == route}


def test_disconnects_mid_upload(target: Target) -> None:
    photos = cast(PERSON + 1)[PERSON]
    port = target.server.port
    uploads_before, cases_before = _posts(target, "/v1/sightings"), _posts(target, "/v1/cases")
    with target.attack("disconnects mid-upload") as run:
        log_from = target.log_size()
        for photo in photos[:HANG_UPS]:
            hang_up(port, "/v1/sightings", upload_headers(target.tip),
                    upload_body(photo.path.read_bytes()))
        # A JSON body too (FastAPI reads it before any key check, and made it a 400).
        hang_up(port, "/v1/cases", {"Content-Type": "application/json"},
                b'{"category": "child", "name": "' + b"x" * 10_000 + b'"}')
        run.sent(HANG_UPS + 1)
        deadline = time.monotonic() + 30
        while True:  # the access log line is written after the count
            hung_up = [line for line in target.log_lines(log_from)
                       if line.get("logger") == "matcher.access" and line.get("status") == 499]
            if len(hung_up) >= HANG_UPS + 1:
                break
            assert time.monotonic() < deadline, target.server.log_tail()
            time.sleep(0.2)
        uploads, cases = _posts(target, "/v1/sightings"), _posts(target, "/v1/cases")
        assert _rose(uploads_before, uploads) == {"499": HANG_UPS}
        assert _rose(cases_before, cases) == {"499": 1}
        # The server goes on: a whole upload is stored.
        with target.client(target.tip) as app:
            whole = target.upload(app, photos[HANG_UPS])
        assert whole.status_code == 201, whole.text
        lines = target.log_lines(log_from)
        assert all(line["level"] == "INFO" for line in hung_up)
        told = [line for line in lines if "closed the connection" in line["msg"]]
        assert len(told) == HANG_UPS + 1 and all(line["level"] == "INFO" for line in told)
        assert not any("ClientDisconnect" in line.get("exc", "") for line in lines)
        run.holds(f"{HANG_UPS + 1} hang-ups counted 499 at INFO, none 5xx; next upload 201")


def _rose(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {status: count - before.get(status, 0.0) for status, count in after.items()
            if count != before.get(status, 0.0)}
