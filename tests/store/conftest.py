"""Every store test runs against SQLite and against a real PostgreSQL server.

Each test gets an empty database: a fresh SQLite file, or a fresh PostgreSQL database created
on the session's server and dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from matcher.config import Settings
from matcher.store import make_engine, migrate, session_factory
from tests.store.postgres import throwaway_server


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    url = os.environ.get("MATCHER_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    with throwaway_server() as server_url:
        yield server_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None for SQLite (the default: <data_dir>/matcher.db), else a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    admin_url = make_url(request.getfixturevalue("postgres_admin_url"))
    if admin_url.drivername in ("postgresql", "postgres"):
        admin_url = admin_url.set(drivername="postgresql+psycopg")
    name = f"matcher_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield admin_url.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def store_settings(db_url: str | None, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=db_url, sqlite_busy_timeout_ms=10_000)


@pytest.fixture
def data_dir(store_settings: Settings) -> Path:
    return store_settings.data_dir


@pytest.fixture
def empty_engine(store_settings: Settings) -> Iterator[Engine]:
    engine = make_engine(store_settings)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(empty_engine: Engine) -> Engine:
    migrate(empty_engine)
    return empty_engine


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session:
        yield session
