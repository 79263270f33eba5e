"""Connections that stall, against a real `matcher serve` on a real port (issue 19, item 2).

Slow heads, slow bodies and a flood of half-open connections must be cut off by the server's
own deadlines and cap, while /healthz keeps answering within a second; and a process out of
file descriptors logs its accept errors once per interval, not once per attempt.
"""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from matcher.config import Settings
from matcher.store import Role
from tests.live import LiveServer

HEAD_TIMEOUT = 2.0
BODY_WINDOW = 2.0
SLACK = 3.0  # a timer's granularity, a busy event loop, two shared cores


@pytest.fixture(scope="module")
def server(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("connections") / "data"
    live = LiveServer(data_dir, cache_from=settings.cache_dir,
                      header_timeout_s=str(HEAD_TIMEOUT), body_timeout_s=str(BODY_WINDOW),
                      max_connections="200", keep_alive_s="5")
    live.start()
    try:
        yield live
    finally:
        live.stop()


def connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def closed_after(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closed `sock` (reading EOF or a reset), failing past `limit`."""
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for over {limit} s")
    return time.monotonic() - started


def healthy(server: LiveServer) -> None:
    started = time.monotonic()
    answer = httpx.get(f"{server.base}/healthz", timeout=5)
    assert answer.status_code == 200
    assert time.monotonic() - started < 1.0


def test_a_half_sent_head_is_closed_while_healthz_answers(server: LiveServer) -> None:
    sock = connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    healthy(server)
    took = closed_after(sock, HEAD_TIMEOUT + SLACK)
    assert took <= HEAD_TIMEOUT + SLACK
    sock.close()
    silent = connect(server)  # a connection that never sends a byte
    assert closed_after(silent, HEAD_TIMEOUT + SLACK) <= HEAD_TIMEOUT + SLACK
    silent.close()
    healthy(server)


def test_a_head_trickled_byte_by_byte_is_still_cut_at_the_deadline(server: LiveServer) -> None:
    sock = connect(server)
    started = time.monotonic()
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200
    try:
        for byte in head:
            sock.sendall(bytes([byte]))
            time.sleep(0.2)
            if time.monotonic() - started > HEAD_TIMEOUT + SLACK:
                pytest.fail("the server took bytes past the head deadline")
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert time.monotonic() - started <= HEAD_TIMEOUT + SLACK
    sock.close()


def test_a_half_sent_upload_by_a_tip_app_is_cut(server: LiveServer) -> None:
    key = server.new_key(Role.TIP_APP, "slow-app")
    sock = connect(server)
    boundary = "b0undary"
    head = (f"POST /v1/sightings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: 1000000\r\n\r\n").encode()
    sock.sendall(head + f"--{boundary}\r\n".encode() + b"x" * 1000)
    took = closed_after(sock, 2 * BODY_WINDOW + SLACK)  # one window starts at the first byte
    assert took <= 2 * BODY_WINDOW + SLACK
    sock.close()
    healthy(server)


def test_a_body_that_keeps_coming_is_not_cut(server: LiveServer) -> None:
    """An honest slow body (above the floor) outlives several windows."""
    sock = connect(server)
    body = b"{" + b" " * 30_000 + b"}"
    sock.sendall(b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode())
    started = time.monotonic()
    for i in range(0, len(body), 5000):  # 5 KB every 0.5 s = 10 KB/s, for 3 s
        sock.sendall(body[i:i + 5000])
        time.sleep(0.5)
    assert time.monotonic() - started > BODY_WINDOW
    sock.settimeout(10)
    answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:80]  # no key: it was read to the end
    sock.close()


def test_a_flood_of_half_open_connections_does_not_stop_healthz(server: LiveServer) -> None:
    flood: list[socket.socket] = []
    try:
        for _ in range(300):  # past the cap of 200: the oldest half-open ones are closed
            sock = connect(server)
            sock.sendall(b"GET / HTTP/1.1\r\n")
            flood.append(sock)
        for _ in range(5):
            healthy(server)
        time.sleep(0.5)
        # The cap held: the server closed the oldest half-open connections, not /healthz's.
        assert sum(_closed_by_server(sock) for sock in flood) >= 300 - 200 - 5
    finally:
        for sock in flood:
            sock.close()
    healthy(server)


def _closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def test_accept_errors_are_logged_once_per_interval(
        settings: Settings, tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", cache_from=settings.cache_dir, max_connections="5000",
                      header_timeout_s="30")
    live.start()
    flood: list[socket.socket] = []
    try:
        assert live.process is not None
        used = len(list(Path(f"/proc/{live.process.pid}/fd").iterdir()))
        # Room for 40 more descriptors: the flood below runs the process out of them.
        resource.prlimit(live.process.pid, resource.RLIMIT_NOFILE, (used + 40, used + 40))
        for _ in range(120):
            try:
                sock = socket.create_connection(("127.0.0.1", live.port), timeout=2)
            except OSError:
                break
            flood.append(sock)
        time.sleep(3)  # asyncio retries the accept every second
    finally:
        for sock in flood:
            sock.close()
        time.sleep(1.5)
        log = live.log_path.read_text(errors="replace")
        live.stop()
    assert log.count("cannot accept connections") >= 1, log[-2000:]
    assert log.count("out of system resource") <= 2, log[-2000:]
    assert log.count("cannot accept connections") <= 2
