from __future__ import annotations

import os

import pytest

import matcher  # noqa: F401  sets OMP_WAIT_POLICY before torch loads libgomp

# isort: split
import torch

from matcher.config import Settings


def pytest_configure(config: pytest.Config) -> None:
    # Two cores in CI: oversubscribed threads slow torch down many times, so pin them.
    torch.set_num_threads(int(os.environ.get("MATCHER_THREADS", "2")))


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings with a throwaway data dir (the weight cache lands there)."""
    return Settings(data_dir=tmp_path_factory.mktemp("matcher-data"), device="cpu")
