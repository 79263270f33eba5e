"""`matcher serve` as a child process on loopback, for the tests that kill it or load it.

The server runs exactly as docs/operations.md shows it (`matcher serve --data-dir D --host 127.0.0.1
--port P`), with a known admin key from MATCHER_ADMIN_KEY. Its logs go to a file next to the
data dir (a pipe nobody reads would fill and stall it).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

from matcher.store import Role
from tests.api.test_serve import free_port
from tests.data import REPO_ROOT


def admin_key() -> str:
    return f"mk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


class LiveServer:
    """Start, stop (SIGTERM, a clean shutdown) and kill (SIGKILL) one data dir's server."""

    def __init__(self, data_dir: Path, cache_from: Path | None = None,
                 log_name: str | None = None, **settings: str) -> None:
        """`log_name` names the log file of one of several servers of one data dir."""
        self.data_dir = data_dir
        self.admin = admin_key()
        self.env = {**os.environ, "MATCHER_ADMIN_KEY": self.admin, "MATCHER_THREADS": "1",
                    **{f"MATCHER_{name.upper()}": value for name, value in settings.items()}}
        self.log_path = data_dir.parent / f"{data_dir.name}-{log_name or 'serve'}.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        if cache_from is not None and cache_from.is_dir():
            # The converted weights of the test session: a fresh data dir would spend seconds
            # converting them again on its first start.
            shutil.copytree(cache_from, data_dir / "cache", dirs_exist_ok=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> None:
        assert self.process is None, "already running"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "matcher", "serve", "--data-dir", str(self.data_dir),
             "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO_ROOT, env=self.env, stdout=self._log, stderr=self._log,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start; its log:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM: uvicorn finishes the requests in flight and the lifespan saves the index."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as when the machine loses power or the OOM killer
        strikes (short of the disk's own cache, which fsync covers)."""
        self._end(signal.SIGKILL)

    def _end(self, how: signal.Signals) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, how)
        self.process.wait(timeout=60)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.is_file():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def client(self, key: str | None = None, timeout: float = 120) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=timeout)

    def new_key(self, role: Role, name: str) -> str:
        with self.client(self.admin) as admin:
            made = admin.post("/v1/keys", json={"role": role.value, "name": name})
        assert made.status_code == 201, made.text
        key: str = made.json()["key"]
        return key

    def metric(self, name: str) -> float:
        """One unlabelled series of GET /metrics (open to loopback without a key)."""
        text = httpx.get(f"{self.base}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"no {name} in /metrics")

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *_: Any) -> None:
        self.kill()
