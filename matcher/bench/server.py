"""A live `matcher serve` for the service benchmark, and the API calls that set it up: keys,
and real cases registered as a case desk would.

The server is a separate process started from the checkout's .venv, with MATCHER_ADMIN_KEY set
and every other MATCHER_* setting from this environment, so what is measured is what an
operator runs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from matcher.bench.phone import Person
from matcher.config import Settings
from matcher.store.db import fresh_database

VENV_MATCHER = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "matcher"


@dataclass
class Server:
    """`matcher serve` in a child process; `stop` ends it as an operator would (SIGTERM, then
    SIGKILL after 30 s), so a clean stop's work is part of the run."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass(frozen=True)
class Workplace:
    """A throwaway data dir and the store the servers of a benchmark run on."""

    work: Path
    settings: Settings  # for this process: the data dir and database URL
    overrides: dict[str, str] = field(default_factory=dict)  # the same, for the servers


def workplace(cleanup: ExitStack, prefix: str, database_url: str | None) -> Workplace:
    """A data dir removed when `cleanup` closes, and a fresh database on the PostgreSQL server
    `database_url` (dropped then too), or SQLite in the data dir."""
    work = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    cleanup.callback(shutil.rmtree, work, ignore_errors=True)
    url, overrides = throwaway_database(cleanup, prefix, database_url)
    return Workplace(work, Settings(data_dir=work, database_url=url), overrides)


def throwaway_database(cleanup: ExitStack, prefix: str, database_url: str | None
                       ) -> tuple[str | None, dict[str, str]]:
    """A fresh database on the PostgreSQL server `database_url`, dropped when `cleanup`
    closes, and the settings that give it to a server; (None, {}) for SQLite."""
    if database_url is None:
        return None, {}
    url = cleanup.enter_context(fresh_database(database_url, prefix.replace("-", "_")))
    return url, {"MATCHER_DATABASE_URL": url}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(data_dir: Path, admin_key: str, timeout_s: float = 600.0,
                 settings: dict[str, str] | None = None, log_name: str = "serve.log") -> Server:
    """The server on a free port of loopback, once /healthz answers (the networks load and the
    index is built first); stopped again if it exits or does not answer in time. `settings`:
    MATCHER_* variables of this run on top of the environment's (a database URL...);
    `log_name`: its log file in the data dir (several servers of one data dir)."""
    port = free_port()
    log = data_dir / log_name
    # One tip-app key sends every upload: lift its rate limit (a deployment has many apps).
    env = {"MATCHER_TIP_RATE_PER_MINUTE": "1000000", "MATCHER_TIP_BURST": "1000000",
           **os.environ, **(settings or {}), "MATCHER_ADMIN_KEY": admin_key}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(VENV_MATCHER), "serve", "--data-dir", str(data_dir),
             "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited ({process.returncode}):\n"
                                   f"{log.read_text()}")
            try:
                if httpx.get(server.url + "/healthz", timeout=2).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the server did not answer /healthz within {timeout_s} s")
    except BaseException:
        server.stop()
        raise


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create_key(client: httpx.Client, admin: str, role: str) -> str:
    answer = client.post("/v1/keys", headers=auth(admin), json={"role": role, "name": role})
    answer.raise_for_status()
    return str(answer.json()["key"])


def register_case(client: httpx.Client, manager: str, person: Person) -> int | None:
    """A real case with one photo; None when the photo has not exactly one fit face."""
    body = {"category": "child", "name": person.identity, "age_when_missing": 8,
            "missing_since": "2020-05-01", "public_fields": ["name", "photos"]}
    answer = client.post("/v1/cases", headers=auth(manager), json=body)
    answer.raise_for_status()
    case_id = int(answer.json()["id"])
    photo = {"photo": (person.case_photo.name, person.case_photo.read_bytes(), "image/jpeg")}
    answer = client.post(f"/v1/cases/{case_id}/photos", headers=auth(manager), files=photo)
    answer.raise_for_status()
    faces = answer.json()["faces"]
    if len(faces) != 1 or not faces[0]["fit"]:
        client.patch(f"/v1/cases/{case_id}", headers=auth(manager), json={"status": "closed"})
        return None
    return case_id
