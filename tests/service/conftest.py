"""The use cases run on one loaded pipeline per test run, over a fresh data dir each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import Runtime, open_runtime
from tests.seed import seed_store


@pytest.fixture
def matcher(settings: Settings, pipeline: FacePipeline, db_url: str | None,
            tmp_path: Path, migrated_sqlite: Path) -> Iterator[Runtime]:
    """On SQLite and on PostgreSQL (`db_url`)."""
    if db_url is None:
        seed_store(tmp_path, migrated_sqlite)
    opened = open_runtime(settings.model_copy(update={
        "data_dir": tmp_path, "database_url": db_url}), pipeline)
    yield opened
    opened.close()


@pytest.fixture
def other(pipeline: FacePipeline, matcher: Runtime) -> Iterator[Runtime]:
    """A second runtime on the store of `matcher` (its own indexes, as another process)."""
    opened = open_runtime(matcher.settings, pipeline)
    yield opened
    opened.close()
