"""The area an alert covers: a circle around the last-seen point whose radius grows with the
hours since the alert was issued, by a schedule of its case's category; and the great-circle
distance that decides whether a point is inside.

Pure functions over numpy arrays: the feed measures thousands of alerts per request, so a
radius and a distance are computed for all of them at once, never in a Python loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from matcher.config import Settings
from matcher.vocabulary import Category

EARTH_RADIUS_KM = 6371.0088  # the mean radius (IUGG), as the review queue's filter uses
EVERYWHERE = math.inf  # the radius of "the whole territory"


@dataclass(frozen=True)
class Schedule:
    """[(from hour, radius km)], from hour 0, hours growing, radii never shrinking; a radius of
    None (the whole territory) only last. Checked again here: a schedule stored with an alert
    is read back without passing through Settings."""

    steps: tuple[tuple[float, float | None], ...]

    def __post_init__(self) -> None:
        hours = [hour for hour, _ in self.steps]
        radii = [EVERYWHERE if km is None else km for _, km in self.steps]
        if not self.steps or hours[0] != 0 or any(b <= a for a, b in zip(hours, hours[1:],
                                                                          strict=False)):
            raise ValueError(f"not a schedule: {self.steps}")
        if any(r <= 0 for r in radii) or any(b < a for a, b in zip(radii, radii[1:],
                                                                     strict=False)):
            raise ValueError(f"an area only widens: {self.steps}")

    @classmethod
    def of(cls, steps: Sequence[Sequence[float | None]]) -> Schedule:
        return cls(tuple((float(hour or 0), None if km is None else float(km))
                         for hour, km in steps))

    def as_lists(self) -> list[tuple[float, float | None]]:
        return list(self.steps)

    def radius_km(self, hours: float) -> float:
        """The radius `hours` after the issue (inf: the whole territory)."""
        return float(self.radii_km(np.asarray([hours], dtype=np.float64))[0])

    def radii_km(self, hours: NDArray[np.float64]) -> NDArray[np.float64]:
        """The radius at each of these hours since the issue (inf: the whole territory)."""
        starts = np.asarray([hour for hour, _ in self.steps], dtype=np.float64)
        radii = np.asarray([EVERYWHERE if km is None else km for _, km in self.steps],
                           dtype=np.float64)
        step = np.searchsorted(starts, np.maximum(hours, 0.0), side="right") - 1
        return radii[step]


def schedules(settings: Settings) -> dict[Category, Schedule]:
    """Each category's schedule, as configured (issue-time: an alert keeps its own)."""
    return {Category.CHILD: Schedule.of(settings.alert_schedule_child),
            Category.ELDERLY: Schedule.of(settings.alert_schedule_elderly)}


def distances_km(lat: float, lon: float, lats: NDArray[np.float64],
                 lons: NDArray[np.float64]) -> NDArray[np.float64]:
    """Great-circle distances (haversine, km) from one point to many; NaN where a point is
    missing (NaN)."""
    lat0, lon0 = math.radians(lat), math.radians(lon)
    phi, lam = np.radians(lats), np.radians(lons)
    a = (np.sin((phi - lat0) / 2) ** 2
         + math.cos(lat0) * np.cos(phi) * np.sin((lam - lon0) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def distance_km(lat0: float, lon0: float, lat1: float, lon1: float) -> float:
    """The great-circle distance between two points (km)."""
    return float(distances_km(lat0, lon0, np.asarray([lat1]), np.asarray([lon1]))[0])
