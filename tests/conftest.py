from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import matcher  # noqa: F401  sets OMP_WAIT_POLICY before torch loads libgomp

# isort: split
import torch

from matcher.config import Settings
from matcher.embed import FacePipeline, load_pipeline
from matcher.store.db import fresh_database
from tests.store.postgres import throwaway_server


def pytest_configure(config: pytest.Config) -> None:
    # Two cores in CI: oversubscribed threads slow torch down many times, so pin them.
    torch.set_num_threads(int(os.environ.get("MATCHER_THREADS", "2")))
    # The service, store, API and CLI tests (and the servers and commands they start, which
    # inherit the environment) were written for dlib's model: its 128-d vectors, its distances
    # and its speed. The production default is the dlib+sface ensemble; tests of accuracy and
    # of the embedders name their model (tests/eval/test_crossage.py, tests/embed). Run the
    # suite on another model with MATCHER_EMBEDDER=... set outside.
    os.environ.setdefault("MATCHER_EMBEDDER", "dlib")


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings with a throwaway data dir (the weight cache lands there). The tip-app rate
    limit is out of the way: tests upload faster than any phone, and tests/api/test_limits.py
    tests the limiter with its own settings."""
    return Settings(data_dir=tmp_path_factory.mktemp("matcher-data"), device="cpu",
                    tip_rate_per_minute=60_000, tip_burst=10_000)


@pytest.fixture(scope="session")
def pipeline(settings: Settings) -> FacePipeline:
    """The loaded detector and embedder of `settings`, shared by every test of the run: loading
    is cheap once the weights are cached, but each copy holds its networks in memory. Tests
    of another model load their own (`load_pipeline(settings.model_copy(update=...))`)."""
    return load_pipeline(settings)


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
    with fresh_database(request.getfixturevalue("postgres_admin_url"), "matcher_test") as url:
        yield url
