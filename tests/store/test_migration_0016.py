"""Revision 0016: API keys get `last_used_at`; earlier keys keep working, never used since."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, inspect, text

from matcher.store import migrate
from matcher.store.db import alembic_config


def test_0016_adds_last_used_and_gives_it_back(empty_engine: Engine) -> None:
    migrate(empty_engine, "0015")
    with empty_engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO api_keys (prefix, key_hash, role, name, created_at) "
            "VALUES ('0123456789ab', :hash, 'admin', 'old', '2026-01-01 00:00:00')"),
            {"hash": "0" * 64})
    migrate(empty_engine, "0016")
    with empty_engine.connect() as connection:
        assert connection.execute(text(
            "SELECT name, last_used_at FROM api_keys")).all() == [("old", None)]
    command.downgrade(alembic_config(empty_engine), "0015")
    columns = {c["name"] for c in inspect(empty_engine).get_columns("api_keys")}
    assert "last_used_at" not in columns and "revoked_at" in columns
