"""`matcher keys` create, list and revoke, run in-process as an operator would at the console;
each creation and revocation is audited with the console as its actor (issue 21, item 5)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from matcher.cli import app
from matcher.config import Settings
from matcher.service import authenticate
from matcher.store import list_events, migrate, session_factory
from matcher.wiring import make_engine

runner = CliRunner()


def _keys(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["keys", *args, "--data-dir", str(data_dir)])
    return result.exit_code, result.stdout, result.stderr


def test_create_list_revoke_and_the_last_admin_key(tmp_path: Path) -> None:
    code, out, _ = _keys(tmp_path, "create", "--role", "admin", "--name", "ops desk")
    assert code == 0
    first, key = out.splitlines()
    assert first == "created admin key 1 for ops desk"  # the id, on stdout
    assert key.startswith("mk_") and " " not in key  # the key alone on the last line

    code, _, err = _keys(tmp_path, "revoke", "1")
    assert code == 1 and "last live admin key" in err and "another admin key first" in err
    code, out, _ = _keys(tmp_path, "create", "--role", "admin", "--name", "ops desk 2")
    assert code == 0 and out.splitlines()[0] == "created admin key 2 for ops desk 2"
    code, out, _ = _keys(tmp_path, "revoke", "1")
    assert code == 0 and out.strip() == "revoked admin key 1 (ops desk)"
    code, _, err = _keys(tmp_path, "revoke", "2")
    assert code == 1 and "last live admin key" in err
    code, _, err = _keys(tmp_path, "revoke", "99")
    assert code == 1 and "no API key 99" in err

    engine = make_engine(Settings(data_dir=tmp_path))
    migrate(engine)
    sessions = session_factory(engine)
    assert authenticate(sessions, key) is None  # revoked from the console: opens nothing
    code, out, _ = _keys(tmp_path, "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["id", "role", "created", "last", "used", "revoked", "name"]
    assert [row.split()[0] for row in rows] == ["1", "2"]
    assert rows[0].endswith("ops desk") and rows[1].endswith("ops desk 2")
    assert rows[1].split()[4:6] == ["-", "-"]  # key 2: never used, never revoked
    assert rows[0].split()[4] == "-" and rows[0].split()[5] != "-"  # key 1: revoked
    assert "mk_" not in out and key.split("_")[1] not in out

    with sessions() as session:
        events = [(e.action, e.object_id, e.actor, e.role, e.api_key_id, e.detail)
                  for e in list_events(session, object_type="api_key")]
    assert events == [
        ("create", "1", "cli", "operator", None, {"role": "admin", "name": "ops desk"}),
        ("create", "2", "cli", "operator", None, {"role": "admin", "name": "ops desk 2"}),
        ("revoke", "1", "cli", "operator", None,
         {"role": "admin", "name": "ops desk", "already_revoked": False}),
    ]  # the refused revocations left no trace: nothing changed
    engine.dispose()
