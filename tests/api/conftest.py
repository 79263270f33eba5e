"""The real app over a fresh data dir, one loaded pipeline shared by every app of the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from matcher.api import create_app
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import Runtime, new_key
from matcher.store import Role
from tests.seed import seed_store

ROLES = tuple(Role)


@pytest.fixture
def api_database_url() -> str | None:
    """SQLite under the data dir. Modules that must also pass on PostgreSQL import
    `on_both_databases` from tests/api/databases.py, which overrides this fixture."""
    return None


@pytest.fixture
def make_client(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path, api_database_url: str | None,
    migrated_sqlite: Path,
) -> Iterator[Callable[..., TestClient]]:
    """Builds `with TestClient(app)` clients over tmp_path (lifespan runs); closes them after."""
    opened: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        app_settings = settings.model_copy(update={
            "data_dir": tmp_path / "data", "database_url": api_database_url, **overrides})
        if app_settings.database_url is None:
            seed_store(app_settings.data_dir, migrated_sqlite)
        client = TestClient(create_app(app_settings, pipeline))
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in reversed(opened):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def matcher_of(client: TestClient) -> Runtime:
    matcher: Runtime = client.app.state.matcher  # type: ignore[attr-defined]
    return matcher


@pytest.fixture
def keys(client: TestClient) -> dict[Role, str]:
    """One live key per role, on the client's store."""
    return {role: new_key(matcher_of(client).sessions, role, f"test {role.value}")[1]
            for role in ROLES}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
