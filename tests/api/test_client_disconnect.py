"""A client that hangs up in the middle of an upload, against `matcher serve` over a real
socket: a client event, logged at info and counted as 499, never an ERROR or a 500 (issue 19,
defect 3: every dropped mobile upload looked like a server fault, and anyone could inflate the
5xx rate that alerts are built on)."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import httpx

from matcher.config import Settings
from matcher.store import Role
from tests.data import fgnet_photos, require_test_data
from tests.live import LiveServer

HANG_UPS = 3
BOUNDARY = "hang-up-boundary-5e1f"


def _upload_body(photo: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"photo\"; "
            f"filename=\"s.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + photo + (
        f"\r\n--{BOUNDARY}--\r\n").encode()


def _hang_up(server: LiveServer, path: str, headers: dict[str, str], body: bytes) -> None:
    """Headers announcing the whole body, half of it, a pause (the server is reading the
    body by then), then the connection closed."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            + f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + body[: len(body) // 2])
        time.sleep(0.5)


def _posts(metrics: str, route: str) -> dict[str, float]:
    """The count of POSTs to the route by status."""
    pattern = re.compile(r'^matcher_http_request_duration_seconds_count\{method="POST",'
                         rf'route="{route}",status="(\w+)"\}} (\S+)$', re.M)
    return {status: float(count) for status, count in pattern.findall(metrics)}


def test_a_hang_up_mid_upload_is_counted_as_499_and_logged_at_info(
    settings: Settings, tmp_path: Path
) -> None:
    require_test_data()
    photo = fgnet_photos()[0].path.read_bytes()
    with LiveServer(tmp_path / "data", cache_from=settings.cache_dir) as server:
        server.start()
        key = server.new_key(Role.TIP_APP, "phone")
        upload = {"Authorization": f"Bearer {key}",
                  "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        for _ in range(HANG_UPS):
            _hang_up(server, "/v1/sightings", upload, _upload_body(photo))
        # A JSON body too (FastAPI reads it before any key check, and made it a 400).
        _hang_up(server, "/v1/cases", {"Content-Type": "application/json"},
                 b'{"category": "child", "name": "' + b"x" * 10_000 + b'"}')
        deadline = time.monotonic() + 30
        while True:
            metrics = httpx.get(f"{server.base}/metrics").text
            uploads, cases = _posts(metrics, "/v1/sightings"), _posts(metrics, "/v1/cases")
            if sum(uploads.values()) >= HANG_UPS and cases:
                break
            assert time.monotonic() < deadline, metrics
            time.sleep(0.2)
        assert uploads == {"499": HANG_UPS} and cases == {"499": 1}
        # The server goes on: a whole upload is stored.
        with server.client(key) as client:
            whole = client.post("/v1/sightings", files={"photo": ("s.jpg", photo,
                                                                  "image/jpeg")})
        assert whole.status_code == 201, whole.text
        server.stop()
        lines = [json.loads(line) for line in server.log_path.read_text().splitlines()
                 if line.startswith("{")]
    assert [line for line in lines if line["level"] in ("ERROR", "CRITICAL")] == []
    assert not any("ClientDisconnect" in line.get("exc", "") for line in lines)
    hang_ups = [line for line in lines if line["logger"] == "matcher.access"
                and line.get("status") == 499]
    assert len(hang_ups) == HANG_UPS + 1 and all(line["level"] == "INFO" for line in hang_ups)
    told = [line for line in lines if "closed the connection" in line["msg"]]
    assert len(told) == HANG_UPS + 1 and all(line["level"] == "INFO" for line in told)
