"""Run a module's API tests on SQLite and on the real PostgreSQL server too:

    from tests.api.databases import on_both_databases  # noqa: F401  (a fixture override)
"""

from __future__ import annotations

import pytest


@pytest.fixture(name="api_database_url")
def on_both_databases(db_url: str | None) -> str | None:
    """`db_url` (tests/conftest.py) is parametrized: None for SQLite, then a fresh PostgreSQL
    database on the test server."""
    return db_url
