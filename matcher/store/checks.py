"""Checks of input values that several tables hold, made before anything is written: a bad
value is refused with InvalidRecord, saying why, instead of a driver's error at the flush (or
none, where SQLite would store it)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from matcher.store.errors import InvalidRecord


def check_position(lat: float | None, lon: float | None) -> None:
    """A sighting's place or a case's last-seen place: both coordinates or neither."""
    if (lat is None) != (lon is None):
        raise InvalidRecord("latitude and longitude go together")
    if lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidRecord(f"not a position: {lat}, {lon}")


def check_points(name: str, points: ArrayLike) -> list[list[float]]:
    """Landmarks or keypoints as JSON-ready (n, 2) points."""
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise InvalidRecord(f"{name} must be (n, 2) points, got shape {array.shape}")
    return array.tolist()
