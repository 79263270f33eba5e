"""`matcher serve` as README shows it: a live uvicorn, a fresh data dir, the admin key once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.data import REPO_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_first_start_prints_an_admin_key_that_creates_keys(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "MATCHER_THREADS": "1"}
    env.pop("MATCHER_ADMIN_KEY", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "matcher", "serve", "--data-dir", str(tmp_path / "d"),
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert server.stdout is not None
        admin = server.stdout.readline().strip()
        assert admin.startswith("mk_"), admin
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.3)
        assert health.status_code == 200
        made = httpx.post(f"{base}/v1/keys", json={"role": "tip_app", "name": "app"},
                          headers={"Authorization": f"Bearer {admin}"}, timeout=10)
        assert made.status_code == 201 and made.json()["key"].startswith("mk_")
        assert httpx.get(f"{base}/openapi.json", timeout=10).status_code == 200
        for page in ("docs", "redoc"):  # they load third-party script: off
            assert httpx.get(f"{base}/{page}", timeout=10).status_code == 404
    finally:
        server.terminate()
        server.wait(timeout=30)
