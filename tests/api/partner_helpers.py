"""Helpers of the partner tests: the README's signature check (run as written), and a partner's
webhook receiver, a real HTTP server on a port of loopback that can refuse, be slow, or be down."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.data import REPO_ROOT

Verify = Callable[[str, str, bytes], bool]


def readme_verify() -> Verify:
    """The `verify` function of README.md's "Partners" section, exactly as a partner would copy
    it."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index("## Partners"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md's Partners section has no python block"
    namespace: dict[str, Any] = {}
    exec(match.group(1), namespace)  # noqa: S102 - the README's own code, under test
    verify: Verify = namespace["verify"]
    return verify


@dataclass
class Received:
    event_id: str
    header_event_id: str
    kind: str
    alert_id: int
    body: bytes
    signature: str
    valid: bool
    answered: int  # the status this receiver answered


class Receiver:
    """A partner's webhook. `mode`: "accept" (200), "refuse" (503) or "slow" (answers 200
    after `delay_s`, past the sender's timeout). `stop` closes the port (connections are then
    refused); `start` opens the same port again."""

    def __init__(self, port: int = 0, mode: str = "accept", delay_s: float = 3.0) -> None:
        self.mode, self.delay_s = mode, delay_s
        self.secret = ""
        self.verify = readme_verify()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/matcher"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                mode = receiver.mode
                if mode == "slow":
                    time.sleep(receiver.delay_s)
                status = 503 if mode == "refuse" else 200
                event = json.loads(body)
                signature = self.headers.get("X-Matcher-Signature", "")
                with receiver._lock:
                    receiver.received.append(Received(
                        event["event_id"], self.headers.get("X-Matcher-Event-Id", ""),
                        event["type"], int(event["alert"]["alert_id"]), body, signature,
                        receiver.verify(receiver.secret, signature, body), status))
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up waiting (slow mode)
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def acknowledged(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.answered == 200]

    def refused(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.answered != 200]


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting {timeout_s} s for {what}")
        time.sleep(0.1)
