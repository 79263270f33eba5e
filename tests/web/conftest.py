"""A live server (uvicorn in a thread, on a free loopback port, over a fresh data dir) and a
headless Chromium driven by Playwright.

The browser is Debian's (`apt-get install chromium`, /usr/bin/chromium); no browser is ever
downloaded. Without it (or without Playwright) the browser tests skip with the reason, unless
MATCHER_REQUIRE_BROWSER=1 (CI, `.ci/run`) makes that a failure.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from matcher.api import create_app
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import Runtime

CHROMIUM = Path(os.environ.get("MATCHER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 800}  # a desktop, or a 10-inch tablet held sideways
PORTRAIT = {"width": 800, "height": 1280}  # the tablet held upright


def _require(reason: str) -> None:
    if os.environ.get("MATCHER_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + "; MATCHER_REQUIRE_BROWSER=1 makes this an error")
    pytest.skip(reason)


@dataclass
class LiveServer:
    url: str
    matcher: Runtime

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)


@pytest.fixture(scope="module")
def server_settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The settings of the module's server: a fresh data dir. A module may override this
    fixture (a calibration in the data dir, a threshold)."""
    return settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("web") / "data"})


@pytest.fixture(scope="module")
def live_server(server_settings: Settings, pipeline: FacePipeline) -> Iterator[LiveServer]:
    """The real app under uvicorn on 127.0.0.1:<free port>, lifespan and all: one per module,
    as starting one costs seconds on two cores."""
    app = create_app(server_settings, pipeline)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False,
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the live server did not start")
        time.sleep(0.05)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app.state.matcher)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (a Playwright Browser), one per module; each test opens its
    own context (a fresh tab's storage)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require("playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.is_file():
        _require(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
