"""Every store test runs against SQLite and against a real PostgreSQL server (`db_url`, from
tests/conftest.py): a fresh SQLite file, or a fresh PostgreSQL database dropped afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from matcher.config import Settings
from matcher.store import migrate, session_factory
from matcher.wiring import make_engine
from tests.seed import seed_store


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
def engine(store_settings: Settings, empty_engine: Engine, migrated_sqlite: Path) -> Engine:
    if store_settings.database_url is None:
        seed_store(store_settings.data_dir, migrated_sqlite)
    migrate(empty_engine)
    return empty_engine


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session:
        yield session
