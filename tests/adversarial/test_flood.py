"""Connection floods against the shared server (issue 19, item 2): 20,000 half-open
connections used to take every file descriptor, time out /healthz for everyone, and log
`socket.accept() out of system resource` 614,398 times in 80 s.

Sized to the suite's budget: twice the connection cap (set low for the suite), and a process
left 40 spare descriptors (`prlimit`) for a flood three times that."""

from __future__ import annotations

import resource
import socket
import time
from pathlib import Path

from tests.adversarial.harness import (
    CONNECTION_CAP,
    HEAD_TIMEOUT_S,
    Target,
    cast,
    healthz_within_a_second,
)
from tests.adversarial.sockets import closed_by_server, connect

FLOOD = 2 * CONNECTION_CAP
SPARE_DESCRIPTORS = 40
DESCRIPTOR_FLOOD = 3 * SPARE_DESCRIPTORS
PERSON = 15  # of the cast: sighted during the flood


def test_a_flood_over_the_connection_cap(target: Target) -> None:
    """Half-open connections past the cap: the oldest are closed at once (well before their
    head deadline would close them), while /healthz answers within a second and a tip app's
    upload is stored."""
    flood: list[socket.socket] = []
    with target.attack("connection flood") as run:
        try:
            started = time.monotonic()
            for _ in range(FLOOD):
                sock = connect(target.server.port)
                sock.sendall(b"GET / HTTP/1.1\r\n")
                flood.append(sock)
            run.sent(FLOOD)
            # The cap held: the server closed the oldest half-open connections, before the
            # first of them reached its head deadline (which would close it anyway).
            wanted = FLOOD - CONNECTION_CAP - 5
            while (closed := sum(closed_by_server(sock) for sock in flood)) < wanted \
                    and time.monotonic() - started < 0.9 * HEAD_TIMEOUT_S:
                time.sleep(0.05)
            assert closed >= wanted, closed
            slowest = max(healthz_within_a_second(target) for _ in range(3))
            with target.client(target.tip) as app:
                sent = target.upload(app, cast(PERSON + 1)[PERSON][1])
            assert sent.status_code == 201, sent.text
        finally:
            for sock in flood:
                sock.close()
        run.holds(f"{FLOOD} half-open vs a cap of {CONNECTION_CAP}: {closed} closed by the "
                  f"server at once; /healthz {slowest * 1000:.0f} ms; an upload stored")


def test_a_flood_past_the_descriptor_limit(target: Target) -> None:
    """The process out of file descriptors logs its accept errors once per interval, not once
    per attempt, and serves again once the flood is gone."""
    assert target.server.process is not None
    pid = target.server.process.pid
    limits = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    used = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    flood: list[socket.socket] = []
    # Whatever else the process does meanwhile fails too, and says so: the accept errors,
    # and the housekeeping round that cannot list the photo folder (it retries).
    with target.attack("descriptor exhaustion",
                       faults=("cannot accept connections", "Too many open files")) as run:
        log_from = target.log_size()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (used + SPARE_DESCRIPTORS, limits[1]))
        try:
            for _ in range(DESCRIPTOR_FLOOD):
                try:
                    flood.append(socket.create_connection(("127.0.0.1", target.server.port),
                                                          timeout=2))
                except OSError:
                    break
            run.sent(len(flood))
            time.sleep(3)  # asyncio retries the accept every second
        finally:
            for sock in flood:
                sock.close()
            resource.prlimit(pid, resource.RLIMIT_NOFILE, limits)
        time.sleep(1)
        messages = [line["msg"] for line in target.log_lines(log_from)]
        told = sum("cannot accept connections" in msg for msg in messages)
        assert 1 <= told <= 2, messages[-20:]
        assert sum("out of system resource" in msg for msg in messages) <= 2
        run.holds(f"{len(flood)} connections with {SPARE_DESCRIPTORS} descriptors spare: "
                  f"accept errors logged {told}x")
