"""Structured logs: the JSON and text formatters, and `matcher serve` writing JSON lines."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from matcher.logs import configure_logging, request_id
from tests.api.test_serve import free_port
from tests.data import REPO_ROOT


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    uvicorn = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
               for name in ("uvicorn", "uvicorn.error", "uvicorn.access")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)
    for name, (old, propagate) in uvicorn.items():
        logging.getLogger(name).handlers[:] = old
        logging.getLogger(name).propagate = propagate


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_the_fields_extras_and_request_id() -> None:
    stream = io.StringIO()
    configure_logging(logging.INFO, json=True, stream=stream)
    configure_logging(logging.INFO, json=True, stream=stream)  # again: no doubled lines
    log = logging.getLogger("matcher.test")
    log.debug("not at INFO")
    log.info("case %d scored", 12, extra={"case_id": 12, "distance": 0.4125})
    token = request_id.set("req-42")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        log.exception("failed for sighting %d", 7)
    finally:
        request_id.reset(token)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO" and first["logger"] == "matcher.test"
    assert first["msg"] == "case 12 scored"
    assert (first["case_id"], first["distance"]) == (12, 0.4125)
    assert "request_id" not in first
    stamp = dt.datetime.fromisoformat(first["ts"])
    assert stamp.tzinfo is not None and abs(dt.datetime.now(dt.UTC) - stamp).total_seconds() < 60
    assert second["level"] == "ERROR" and second["request_id"] == "req-42"
    assert "ValueError: bad\nvalue" in second["exc"]  # the traceback stays inside one line


@pytest.mark.usefixtures("restore_logging")
def test_text_lines_append_extras() -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=False, stream=stream)
    logging.getLogger("matcher.test").info("hello", extra={"route": "/v1/cases/{case_id}"})
    line = stream.getvalue().strip()
    assert line.endswith("INFO matcher.test: hello route=/v1/cases/{case_id}"), line


def test_serve_logs_json_lines_and_opens_metrics_on_loopback(tmp_path: Path) -> None:
    """A live server bound to 127.0.0.1: the real loopback rule, uvicorn's lines as JSON, and
    our access line instead of uvicorn's (which would carry the path and query string)."""
    port = free_port()
    env = {**os.environ, "MATCHER_THREADS": "1"}
    env.pop("MATCHER_ADMIN_KEY", None)
    env.pop("MATCHER_METRICS_OPEN_ON_LOOPBACK", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "matcher", "serve", "--data-dir", str(tmp_path / "d"),
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.3)
        scraped = httpx.get(f"{base}/metrics?token=s3cr3t", timeout=10,
                            headers={"X-Request-ID": "scrape-1"})
        assert scraped.status_code == 200, scraped.text
        assert "matcher_http_request_duration_seconds_bucket" in scraped.text
        proxied = httpx.get(f"{base}/metrics", headers={"X-Forwarded-For": "203.0.113.9"},
                            timeout=10)
        assert proxied.status_code == 401
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    # Every line is JSON but the first start's notice, a message to the person at the terminal
    # beside the admin key on stdout.
    lines = [json.loads(line) for line in stderr.splitlines()
             if not line.startswith("First start: an admin API key was created.")]
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    assert not any("color_message" in line for line in lines)
    access = [line for line in lines if line["logger"] == "matcher.access"]
    scrape = [line for line in access if line.get("request_id") == "scrape-1"]
    assert [(line["method"], line["route"], line["status"]) for line in scrape] \
        == [("GET", "/metrics", 200)]
    assert ("GET", "/healthz", 200) in {(a["method"], a["route"], a["status"]) for a in access}
    assert "s3cr3t" not in stderr and "uvicorn.access" not in {line["logger"] for line in lines}
