"""Manifests of labelled photos: CSV with path, identity and (optional) age columns."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path


def research_data_dir() -> Path:
    """Where the research photos are: MATCHER_TEST_DATA, else ../shared/data beside the
    repository checkout (they are never part of it: ../shared/data/README.md). For tests and
    the scripts, which run from a checkout."""
    beside = Path(__file__).resolve().parents[3] / "shared" / "data"
    return Path(os.environ.get("MATCHER_TEST_DATA", beside))


class ManifestError(ValueError):
    """A manifest is missing, lacks a column, or has a value that cannot be read."""


@dataclass(frozen=True)
class LabelledPhoto:
    path: Path  # absolute: manifest paths are relative to the manifest's folder
    identity: str
    age: int | None


def read_manifest(manifest: Path, require_age: bool = False) -> list[LabelledPhoto]:
    try:
        with manifest.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {manifest}: {exc}") from exc
    needed = {"path", "identity"} | ({"age"} if require_age else set())
    if not rows or not needed <= set(rows[0]):
        raise ManifestError(f"{manifest} needs the columns {sorted(needed)}")
    photos = []
    for line, row in enumerate(rows, start=2):
        age_text = (row.get("age") or "").strip()
        try:
            age = int(age_text) if age_text else None
        except ValueError as exc:
            raise ManifestError(f"{manifest}:{line}: age {age_text!r} is not a number") from exc
        if require_age and age is None:
            raise ManifestError(f"{manifest}:{line}: age is required")
        photos.append(LabelledPhoto(manifest.parent / row["path"], row["identity"], age))
    return photos
