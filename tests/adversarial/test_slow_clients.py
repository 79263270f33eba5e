"""Slow heads and slow bodies against the shared server (issue 19, item 2): cut off by the
server's own deadlines while /healthz keeps answering within a second, and an honest slow body
still served."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.adversarial.harness import BODY_WINDOW_S, HEAD_TIMEOUT_S, Target, healthz_within_a_second
from tests.adversarial.sockets import BOUNDARY, closed_after, connect, head, upload_headers

SLACK_S = 3.0  # a timer's granularity, a busy event loop, two shared cores
TRICKLE_S = 0.2  # between two bytes of a trickled head


def _half_head(port: int) -> float:
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        return _cut(sock, HEAD_TIMEOUT_S + SLACK_S)


def _silent(port: int) -> float:
    with connect(port) as sock:
        return _cut(sock, HEAD_TIMEOUT_S + SLACK_S)


def _cut(sock: socket.socket, limit: float) -> float:
    """Seconds until the server cut `sock` without a word (not answering it)."""
    took, answered = closed_after(sock, limit)
    assert answered == b"", answered[:200]
    return took


def _trickled_head(port: int) -> float:
    """A byte every TRICKLE_S: each keeps the connection busy, none completes the head."""
    started = time.monotonic()
    with connect(port) as sock:
        try:
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200:
                sock.sendall(bytes([byte]))
                time.sleep(TRICKLE_S)
                if time.monotonic() - started > HEAD_TIMEOUT_S + SLACK_S:
                    pytest.fail("the server took bytes past the head deadline")
        except (BrokenPipeError, ConnectionResetError):
            pass
    return time.monotonic() - started


def test_slow_headers(target: Target) -> None:
    """A half-sent head, a silent connection and a head trickled byte by byte, at once: each
    is closed within the head deadline (+ slack) while /healthz answers in under a second."""
    port = target.server.port
    with target.attack("slow headers") as run, ThreadPoolExecutor(3) as pool:
        cuts = [pool.submit(attack, port) for attack in (_half_head, _silent, _trickled_head)]
        run.sent(len(cuts))
        time.sleep(HEAD_TIMEOUT_S / 2)
        slowest_healthz = max(healthz_within_a_second(target) for _ in range(3))
        took = [cut.result() for cut in cuts]
        # Cut by the head deadline: not before it, nor long after.
        assert 0.9 * HEAD_TIMEOUT_S <= min(took) and max(took) <= HEAD_TIMEOUT_S + SLACK_S, took
        run.holds(f"heads cut after {min(took):.1f}-{max(took):.1f} s "
                  f"(deadline {HEAD_TIMEOUT_S:g} s); /healthz {slowest_healthz * 1000:.0f} ms")


def _stalled_upload(target: Target) -> float:
    """A tip app's upload that stops after 1 KB of its announced megabyte."""
    with connect(target.server.port) as sock:
        sock.sendall(head("POST", "/v1/sightings", target.server.port,
                          upload_headers(target.tip), 1_000_000)
                     + f"--{BOUNDARY}\r\n".encode() + b"x" * 1000)
        return _cut(sock, 2 * BODY_WINDOW_S + SLACK_S)  # a window starts at the first byte


def _honest_slow_body(target: Target) -> bytes:
    """A 30 KB JSON body at 10 KB/s, above the floor of 1 KiB/s: it outlives several windows
    and is read to its end (no key: a 401 once read)."""
    body = b"{" + b" " * 30_000 + b"}"
    with connect(target.server.port) as sock:
        sock.sendall(head("POST", "/v1/keys", target.server.port,
                          {"Content-Type": "application/json"}, len(body)))
        for i in range(0, len(body), 5000):
            sock.sendall(body[i:i + 5000])
            time.sleep(0.5)
        sock.settimeout(10)
        return sock.recv(4096)


def test_slow_bodies(target: Target) -> None:
    with target.attack("slow bodies") as run, ThreadPoolExecutor(2) as pool:
        stalled = pool.submit(_stalled_upload, target)
        started = time.monotonic()
        honest = pool.submit(_honest_slow_body, target)
        run.sent(2)
        cut = stalled.result()
        # Cut by the body deadline: not before a window passed (its timer started when the
        # server read the first byte, a moment before ours), nor long after the second.
        assert 0.9 * BODY_WINDOW_S <= cut <= 2 * BODY_WINDOW_S + SLACK_S, cut
        answer = honest.result()
        lasted = time.monotonic() - started
        assert lasted > BODY_WINDOW_S
        assert answer.startswith(b"HTTP/1.1 401"), answer[:80]
        run.holds(f"stalled upload cut after {cut:.1f} s (window {BODY_WINDOW_S:g} s); "
                  f"a 10 KB/s body served after {lasted:.1f} s")
