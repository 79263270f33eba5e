"""Data dirs for tests: an empty store already at the newest revision, a recorded model."""

from __future__ import annotations

import shutil
from pathlib import Path

from matcher.config import Settings
from matcher.files import private_folder
from matcher.service.serving import record_serving
from matcher.store import migrate, session_factory, session_scope
from matcher.store.db import SQLITE_FILE
from matcher.wiring import make_engine


def seed_store(data_dir: Path, migrated: Path) -> None:
    """Puts the migrated empty store (`migrated_sqlite`) where a data dir's SQLite store lives,
    unless one is there already."""
    private_folder(data_dir)
    target = data_dir / SQLITE_FILE
    if not target.exists():
        shutil.copyfile(migrated, target)


def record_model(settings: Settings) -> None:
    """The store of `settings` (migrated here if new) serves `settings`' model, as a
    reindex's swap records it."""
    private_folder(settings.data_dir)
    engine = make_engine(settings)
    try:
        migrate(engine)
        with session_scope(session_factory(engine)) as session:
            record_serving(session, settings, "recorded-by-a-test")
    finally:
        engine.dispose()
