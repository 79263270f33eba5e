"""An erased case leaves no readable trace in SQLite's files when DELETE answers (issue 19,
defect 5): its text sat in `matcher.db-wal` until a checkpoint, and a crash or a backup in
that window kept what had been erased on request."""

from __future__ import annotations

import logging
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from matcher.service import new_key
from matcher.service.maintenance import maintain
from matcher.store import Role
from tests.api.builders import case_body
from tests.api.conftest import auth, matcher_of
from tests.api.review_helpers import add_photo, decide, get, sighting


def _database_files(data_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(data_dir.glob("matcher.db*"))}


def test_an_erased_case_leaves_no_text_in_the_database_or_its_wal(
    client: TestClient, keys: dict[Role, str]
) -> None:
    manager, investigator = keys[Role.CASE_MANAGER], keys[Role.INVESTIGATOR]
    token = secrets.token_hex(6)
    texts = {field: f"{field}-{token}" for field in (
        "name", "last_seen_place", "description", "note", "edited")}
    made = client.post("/v1/cases", json=case_body(
        texts["name"], last_seen_place=texts["last_seen_place"],
        description=texts["description"]), headers=auth(manager))
    assert made.status_code == 201, made.text
    case_id = made.json()["id"]
    add_photo(client, manager, case_id, "001A08.JPG")
    seen = sighting(client, keys[Role.TIP_APP], "001A10.JPG")
    [candidate] = [c for c in get(client, investigator, f"/v1/sightings/{seen}/candidates")
                   if c["case_id"] == case_id]
    decide(client, investigator, candidate["id"], "not_match", texts["note"])
    edited = client.patch(f"/v1/cases/{case_id}", json={"description": texts["edited"]},
                          headers=auth(manager))
    assert edited.status_code == 200, edited.text
    data_dir = matcher_of(client).settings.data_dir
    before = b"".join(_database_files(data_dir).values())
    assert all(text.encode() in before for text in texts.values())  # the test can see them

    erased = client.delete(f"/v1/cases/{case_id}", headers=auth(manager))
    assert erased.status_code == 204, erased.text
    files = _database_files(data_dir)
    assert "matcher.db" in files
    left = {(name, field) for name, data in files.items()
            for field, text in texts.items() if text.encode() in data}
    assert left == set()
    # Zeroed in their pages, not just unlinked (some SQLite builds have it on by default).
    with matcher_of(client).engine.connect() as connection:
        assert connection.execute(text("PRAGMA secure_delete")).scalar() == 1
    # The service goes on: the store still reads and writes.
    assert client.get(f"/v1/cases/{case_id}", headers=auth(manager)).status_code == 404
    assert sighting(client, keys[Role.TIP_APP], "001A14.JPG")


def test_a_reader_that_blocks_the_checkpoint_delays_the_wipe_to_housekeeping(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    """What README says happens when a reader holds an old snapshot past the busy timeout:
    the 204 goes out, a warning says the log still holds the old pages, and the next
    housekeeping round empties it."""
    client = make_client(sqlite_busy_timeout_ms=100)
    manager = auth(new_key(matcher_of(client).sessions, Role.CASE_MANAGER, "desk")[1])
    name = f"name-{secrets.token_hex(6)}"
    case_id = client.post("/v1/cases", json=case_body(name), headers=manager).json()["id"]
    data_dir = matcher_of(client).settings.data_dir
    reader = sqlite3.connect(data_dir / "matcher.db", isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM cases").fetchone()  # a snapshot with the case
        with caplog.at_level(logging.WARNING, logger="matcher.service.retention"):
            erased = client.delete(f"/v1/cases/{case_id}", headers=manager)
        assert erased.status_code == 204, erased.text
        assert "kept SQLite's write-ahead log from being emptied" in caplog.text
        assert name.encode() in _database_files(data_dir)["matcher.db-wal"]
    finally:
        reader.close()
    maintain(matcher_of(client))
    assert not any(name.encode() in data for data in _database_files(data_dir).values())
