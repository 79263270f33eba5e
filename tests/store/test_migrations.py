from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from matcher.config import Settings
from matcher.store import current_revision, database_url, make_engine, migrate
from matcher.store.db import alembic_config
from matcher.store.models import Base

TABLES = {
    "cases", "case_photos", "sightings", "faces", "candidates", "api_keys", "decisions",
    "audit_events",
}


def test_migrations_create_every_table_on_an_empty_database(empty_engine: Engine) -> None:
    assert current_revision(empty_engine) is None
    assert not set(inspect(empty_engine).get_table_names()) & TABLES
    migrate(empty_engine)
    assert set(inspect(empty_engine).get_table_names()) >= TABLES | {"alembic_version"}
    assert current_revision(empty_engine) == "0002"


def test_migrating_again_changes_nothing(engine: Engine) -> None:
    migrate(engine)
    migrate(engine)
    assert current_revision(engine) == "0002"


def test_the_migrations_go_down_and_up_again(engine: Engine) -> None:
    command.downgrade(alembic_config(engine), "base")
    assert not set(inspect(engine).get_table_names()) & TABLES
    migrate(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES


def test_the_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_sqlite_is_the_default_under_the_data_dir(tmp_path: Path) -> None:
    url = database_url(Settings(data_dir=tmp_path))
    assert url.get_backend_name() == "sqlite"
    assert url.database == str(tmp_path / "matcher.db")
    pg = database_url(Settings(data_dir=tmp_path, database_url="postgresql://u:p@db/matcher"))
    assert pg.drivername == "postgresql+psycopg"


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(Settings(data_dir=tmp_path / "data", sqlite_busy_timeout_ms=1234))
    try:
        migrate(engine)
        assert (tmp_path / "data" / "matcher.db").is_file()
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 1234
    finally:
        engine.dispose()
