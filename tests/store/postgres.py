"""A throwaway PostgreSQL server for the store tests.

MATCHER_TEST_POSTGRES_URL (a role allowed to CREATE DATABASE) wins; otherwise the server
binaries are looked up on PATH and under /usr/lib/postgresql/*/bin (Debian's `postgresql`
package, which .ci/run installs), and a server is started on a free loopback port in a temp dir.
initdb refuses to run as root, so as root the server runs as the `postgres` user.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from glob import glob
from pathlib import Path

import pytest


def find_bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    def version(path: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path))
    candidates = sorted(glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=version)
    return Path(candidates[-1]).parent if candidates else None


def unavailable(reason: str) -> None:
    """Skip, or fail in CI (MATCHER_REQUIRE_TEST_DATA=1), when PostgreSQL cannot be reached."""
    if os.environ.get("MATCHER_REQUIRE_TEST_DATA") == "1":
        pytest.fail(reason + "; MATCHER_REQUIRE_TEST_DATA=1 makes this an error")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def throwaway_server() -> Iterator[str]:
    """Starts a server; yields the URL of its `postgres` database as superuser `matcher`."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        unavailable("no PostgreSQL server binaries (pg_ctl) on PATH or under "
                    "/usr/lib/postgresql/*/bin; install Debian's `postgresql` package or set "
                    "MATCHER_TEST_POSTGRES_URL")
        raise AssertionError("unreachable")
    run_as: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="matcher-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            unavailable("running as root and there is no `postgres` user to run initdb as")
            raise AssertionError("unreachable") from None
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*run_as, *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            log = root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {done.stderr or done.stdout}\n{tail}")

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "matcher", "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync")
        # Loopback only; durability off: the data is thrown away after the tests.
        options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   f"-c synchronous_commit=off -c full_page_writes=off")
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
            "-t", "30", "-o", options, "start")
        # If the test run is killed before its teardown, this stops the server and cleans up.
        stop = shlex.join([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                           "stop"])
        watchdog = subprocess.Popen(
            ["sh", "-c", f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; "
                         f"{stop} >/dev/null 2>&1; rm -rf {shlex.quote(str(root))}"],
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            yield f"postgresql+psycopg://matcher@127.0.0.1:{port}/postgres"
        finally:
            watchdog.terminate()
            watchdog.wait()
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
