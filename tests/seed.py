"""A data dir that starts with an empty store already at the newest revision."""

from __future__ import annotations

import shutil
from pathlib import Path

from matcher.files import private_folder
from matcher.store.db import SQLITE_FILE


def seed_store(data_dir: Path, migrated: Path) -> None:
    """Puts the migrated empty store (`migrated_sqlite`) where a data dir's SQLite store lives,
    unless one is there already."""
    private_folder(data_dir)
    target = data_dir / SQLITE_FILE
    if not target.exists():
        shutil.copyfile(migrated, target)
