"""Small protocols on the real photos, for tests that run the pipeline: a few FG-NET children,
20 LFW people and 20 LAG children (young photos), written as manifests of absolute paths."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from matcher.eval.manifest import read_manifest
from tests.data import require_test_data

# Four children with a case photo and sightings in every age-gap band (17 sightings), and one
# (fgnet-003, first photo at 18) who has no case photo.
FGNET_PEOPLE = ("fgnet-001", "fgnet-003", "fgnet-009", "fgnet-011", "fgnet-015")
OTHER_PEOPLE = 20  # per distractor manifest: 10 gallery cases, 10 non-mated searches


@dataclass(frozen=True)
class SmallManifests:
    cross_age: Path  # FG-NET: path, identity, age
    distractors: Path  # LFW adults, every photo of each person
    children: Path  # LAG young photos, every young photo of each person


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _first_people(manifest: Path, count: int) -> list[dict[str, str]]:
    """Every row of the first `count` people by identity, paths made absolute."""
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = set(sorted({row["identity"] for row in rows})[:count])
    return [{**row, "path": str(manifest.parent / row["path"])} for row in rows
            if row["identity"] in chosen]


def children_manifest(folder: Path, people: int) -> Path:
    """A manifest of the young photos of the first `people` LAG people (a skip without them)."""
    young = require_test_data() / "lag-dev" / "young_manifest.csv"
    if not young.is_file():
        reason = f"LAG young photos not found at {young}"
        if os.environ.get("MATCHER_REQUIRE_TEST_DATA") == "1":
            pytest.fail(reason + "; MATCHER_REQUIRE_TEST_DATA=1 makes this an error")
        pytest.skip(reason)
    return _write(folder / f"lag_young_{people}.csv", _first_people(young, people))


@pytest.fixture(scope="session")
def small_manifests(tmp_path_factory: pytest.TempPathFactory) -> SmallManifests:
    data = require_test_data()
    folder = tmp_path_factory.mktemp("manifests")
    fgnet = [{"path": str(p.path), "identity": p.identity, "age": str(p.age)}
             for p in read_manifest(data / "fgnet-dev" / "manifest.csv", require_age=True)
             if p.identity in FGNET_PEOPLE]
    return SmallManifests(
        cross_age=_write(folder / "fgnet.csv", fgnet),
        distractors=_write(folder / "lfw.csv",
                           _first_people(data / "lfw-dev" / "manifest.csv", OTHER_PEOPLE)),
        children=children_manifest(folder, OTHER_PEOPLE),
    )
