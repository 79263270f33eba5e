"""Builders of test data: the research photos under MATCHER_TEST_DATA, and generated images.

The photos may not be redistributed, so they never enter the repository. Without them, tests
that need them skip with a clear reason, unless MATCHER_REQUIRE_TEST_DATA=1 (CI) makes that a
failure.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

from matcher.eval.manifest import research_data_dir

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Photo:
    path: Path
    identity: str
    age: int | None


def test_data_dir() -> Path:
    return research_data_dir()


def require_test_data() -> Path:
    """The data dir, or a skip (a failure when MATCHER_REQUIRE_TEST_DATA=1)."""
    root = test_data_dir()
    if (root / "lfw-dev" / "manifest.csv").is_file() and (root / "fgnet-dev").is_dir():
        return root
    reason = (
        f"research photos not found at {root} (set MATCHER_TEST_DATA to the folder holding "
        f"lfw-dev/ and fgnet-dev/)"
    )
    if os.environ.get("MATCHER_REQUIRE_TEST_DATA") == "1":
        pytest.fail(reason + "; MATCHER_REQUIRE_TEST_DATA=1 makes this an error")
    pytest.skip(reason)


@lru_cache(maxsize=4)
def _manifest(name: str) -> tuple[Photo, ...]:
    root = require_test_data() / name
    with (root / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return tuple(
        Photo(root / row["path"], row["identity"], int(row["age"]) if row.get("age") else None)
        for row in rows
    )


def lfw_photos() -> tuple[Photo, ...]:
    return _manifest("lfw-dev")


def fgnet_photos() -> tuple[Photo, ...]:
    return _manifest("fgnet-dev")


def fgnet_photo(name: str) -> bytes:
    """The bytes of the FG-NET dev photo of that file name."""
    return next(p for p in fgnet_photos() if p.path.name == name).path.read_bytes()


def sample(photos: tuple[Photo, ...], count: int, seed: int = 0) -> list[Photo]:
    """A seeded, spread-out sample: every k-th photo from a seeded offset."""
    if count >= len(photos):
        return list(photos)
    step = len(photos) / count
    offset = (seed * 7919) % max(1, int(step))
    return [photos[int(offset + i * step)] for i in range(count)]
