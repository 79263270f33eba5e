"""`matcher keys create` prints a key alone on its last line, and the server accepts it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from tests.data import REPO_ROOT


def test_keys_create_prints_a_working_key(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-m", "matcher", "keys", "create", "--data-dir", str(data_dir),
         "--role", "investigator", "--name", "desk 4"],
        cwd=REPO_ROOT, env={**os.environ, "MATCHER_THREADS": "1"}, capture_output=True,
        text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    key = result.stdout.splitlines()[-1]
    assert key.startswith("mk_") and " " not in key
    client = make_client()  # the same data dir (tmp_path / "data")
    response = client.get("/v1/cases/1", headers={"X-API-Key": key})
    assert response.status_code == 404  # authenticated and allowed: there is no case 1
    assert client.get("/v1/cases/1", headers={"X-API-Key": key + "x"}).status_code == 401


def test_keys_create_refuses_an_unknown_role(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "matcher", "keys", "create", "--data-dir", str(tmp_path),
         "--role", "root", "--name", "x"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "unknown role" in result.stderr
