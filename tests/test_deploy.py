"""deploy/ read against the code: the compose file, the systemd unit and its environment name
only settings that exist, start the server as the CLI takes it, and let the largest upload
through the proxy. (Nothing here runs Docker or systemd: the files are checked as text.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from matcher.cli import app
from matcher.config import Settings
from tests.data import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
SETTINGS = {f"MATCHER_{name.upper()}" for name in Settings.model_fields}


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def _env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_compose_runs_several_matchers_on_one_postgres_and_one_photo_volume() -> None:
    services = _compose()["services"]
    assert {"postgres", "matcher", "proxy"} <= set(services)
    matcher = services["matcher"]
    env = matcher["environment"]
    assert set(env) <= SETTINGS, set(env) - SETTINGS
    assert env["MATCHER_DATABASE_URL"].startswith("postgresql://")
    assert env["MATCHER_DATA_DIR"] == "/data"
    assert any(volume.endswith(":/data") for volume in matcher["volumes"])
    assert "resolve" in (DEPLOY / "nginx.conf").read_text()  # every replica of --scale


def test_the_systemd_unit_starts_the_server_as_the_cli_takes_it() -> None:
    unit = (DEPLOY / "systemd" / "matcher@.service").read_text()
    command = shlex.split(re.search(r"^ExecStart=(.+)$", unit, re.MULTILINE).group(1))
    assert command[0].endswith("/.venv/bin/matcher") and command[1] == "serve"
    help_text = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200).output
    for option in (word for word in command[2:] if word.startswith("--")):
        assert option in help_text, option
    env = _env_file(DEPLOY / "systemd" / "matcher.env.example")
    assert set(env) <= SETTINGS, set(env) - SETTINGS
    Settings(**{name[len("MATCHER_"):].lower(): value for name, value in env.items()
                if name != "MATCHER_ADMIN_KEY"})  # the values parse


def test_the_proxy_lets_the_largest_upload_through() -> None:
    size = re.search(r"client_max_body_size (\d+)m;", (DEPLOY / "nginx.conf").read_text())
    assert size is not None
    assert int(size.group(1)) * 1024 * 1024 >= Settings().request_bytes_limit
