"""Engines, sessions and migrations.

SQLite (the default, at `<data_dir>/matcher.db`) runs in WAL mode with foreign keys on, a busy
timeout and secure_delete (a deleted row's bytes are overwritten with zeros, not left in a free
part of a page: an erased case must not be readable in the file; `truncate_wal` empties the
log). Transactions are left to the driver's default: reads run outside any transaction and a
transaction begins at its first write, so it waits (up to the busy timeout) for the write lock
instead of failing with "database is locked". That is close to PostgreSQL's READ COMMITTED.
The two usual alternatives are worse with an ORM session, which holds its transaction open until
commit: "BEGIN IMMEDIATE" on every session let a test session that had only read hold off another
connection's DELETE for the whole busy timeout, and a deferred BEGIN fails at once (no busy wait,
SQLITE_BUSY_SNAPSHOT) when a transaction that has read tries to write after another writer
committed.
Consequence: no SAVEPOINTs (`Session.begin_nested`) on SQLite.
PostgreSQL is reached through `MATCHER_DATABASE_URL`.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from matcher.store.errors import MigrationError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_FILE = "matcher.db"


def store_url(database_url: str | None, data_dir: Path) -> URL:
    """`database_url` (PostgreSQL), or SQLite under the data dir when it is empty."""
    if database_url:
        return with_shipped_driver(database_url)
    return URL.create("sqlite+pysqlite", database=str(data_dir / SQLITE_FILE))


def with_shipped_driver(url: str | URL) -> URL:
    """A plain `postgresql://` URL gets psycopg 3, the driver we ship (SQLAlchemy would pick
    psycopg2)."""
    url = make_url(url)
    if url.drivername in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    return url


@contextmanager
def fresh_database(server_url: str | URL, prefix: str) -> Iterator[str]:
    """The URL of a new, empty database on the PostgreSQL server at `server_url` (a role
    allowed to create databases), dropped on leaving even if connections to it remain: for
    tests and benchmarks, which must not touch a real store."""
    admin_url = with_shipped_driver(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield admin_url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def open_engine(url: URL | str, sqlite_busy_timeout_ms: int = 10_000) -> Engine:
    """An engine for the store at `url` (`store_url`); a SQLite file's folder is created."""
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        return sqlite_engine(url, sqlite_busy_timeout_ms)
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


def sqlite_engine(url: URL | str, busy_timeout_ms: int = 10_000) -> Engine:
    # hide_parameters: a database error's message (logged, and in a 500's traceback) would
    # otherwise carry the statement's values, e.g. a reporter's contact or a child's name.
    engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000},
                           hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough in WAL mode, much faster
        cursor.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed, not just unlinked
        cursor.close()
        add_math_functions(dbapi_connection)

    return engine


def truncate_wal(engine: Engine, attempts: int = 2, pause_s: float = 0.5) -> bool:
    """SQLite: copies every page of the write-ahead log into the database file and empties the
    log (`PRAGMA wal_checkpoint(TRUNCATE)`). Deleted rows were zeroed in their pages
    (secure_delete), so afterwards their old versions are in neither file. A reader still on an
    older snapshot blocks it: each try waits up to the busy timeout for it, then `pause_s`
    more; False when every try was blocked (the old pages stay in the log until a checkpoint
    completes). True at once for other databases: PostgreSQL's WAL is not ours to empty."""
    if engine.dialect.name != "sqlite":
        return True
    for attempt in range(attempts):
        with engine.connect() as connection:
            busy, _, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        if not busy:
            return True
        if attempt + 1 < attempts:
            time.sleep(pause_s)
    return False


def add_math_functions(connection: sqlite3.Connection, force: bool = False) -> None:
    """sin and cos (the review queue's distance filter) where SQLite was built without them."""
    if not force:
        try:
            connection.execute("SELECT sin(0), cos(0)")
            return
        except sqlite3.OperationalError:
            pass
    for name, fn in (("sin", math.sin), ("cos", math.cos)):
        connection.create_function(name, 1, _null_safe(fn), deterministic=True)


def _null_safe(fn: Callable[[float], float]) -> Callable[[float | None], float | None]:
    return lambda value: None if value is None else fn(value)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # Rows stay readable after commit: the service returns them after the transaction ends.
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back when it raises."""
    with factory() as session, session.begin():
        yield session


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Brings the schema up to `revision` (idempotent: nothing happens when already there)."""
    try:
        command.upgrade(alembic_config(engine), revision)
    except Exception as error:  # Alembic and the drivers raise many kinds; name the step
        raise MigrationError(f"migrating the store to {revision} failed: {error}") from error
    log.info("store schema at %s (%s)", revision, engine.url.get_backend_name())


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())
