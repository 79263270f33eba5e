"""`matcher embed` as a user runs it: a separate process, sockets disabled, a fresh cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data import REPO_ROOT, lfw_photos, sample

# Runs the CLI with every socket refused, so any attempt to reach a network fails loudly.
NO_NETWORK_MAIN = """
import socket, sys
class _NoNetwork(socket.socket):
    def __init__(self, *args, **kwargs):
        raise RuntimeError("network access attempted")
socket.socket = _NoNetwork
socket.create_connection = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("network"))
from matcher.cli import app
sys.argv[0] = "matcher"
app()
"""


def run_cli(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MATCHER_DATA_DIR": str(data_dir), "MATCHER_THREADS": "2"}
    return subprocess.run(
        [sys.executable, "-c", NO_NETWORK_MAIN, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def bad_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bad") / "not-a-photo.jpg"
    path.write_text("<html>this is not a jpeg</html>")
    return path


def test_embed_json_offline_from_a_fresh_cache(tmp_path: Path, bad_file: Path) -> None:
    photos = [p.path for p in sample(lfw_photos(), 2, seed=9)]
    result = run_cli(["embed", "--json", *map(str, photos), str(bad_file)], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_path = {line["path"]: line for line in lines}
    assert set(by_path) == {*map(str, photos), str(bad_file)}
    assert by_path[str(bad_file)]["error"].startswith("not_an_image")
    for photo in photos:
        faces = by_path[str(photo)]["faces"]
        assert faces, f"no face in {photo}"
        face = faces[0]
        assert len(face["box"]) == 4 and len(face["landmarks"]) == 5
        assert len(face["vector"]) == 128
        assert {"fit", "reasons", "size_px", "sharpness"} <= set(face["quality"])
    # Converted weights were cached under the data dir for the next start.
    assert list((tmp_path / "cache").glob("*.npz"))


def test_exit_code_is_non_zero_only_when_every_input_failed(tmp_path: Path, bad_file: Path) -> None:
    missing = tmp_path / "missing.jpg"
    result = run_cli(["embed", "--json", str(bad_file), str(missing)], tmp_path)
    assert result.returncode == 1
    errors = [json.loads(line)["error"] for line in result.stdout.splitlines()]
    assert len(errors) == 2
    assert any("No such file" in e for e in errors)
