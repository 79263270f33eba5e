"""The area of an alert: its radius by the hours since the issue, and great-circle distances."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from matcher.config import Settings
from matcher.service.alert_areas import Schedule, distance_km, distances_km, schedules
from matcher.vocabulary import Category


def test_the_child_schedule_is_issue_22s() -> None:
    child = schedules(Settings())[Category.CHILD]
    radii = [child.radius_km(h) for h in (0, 0.5, 0.999, 1, 2.9, 3, 100)]
    assert radii == [100, 100, 100, 500, 500, math.inf, math.inf]
    elderly = schedules(Settings())[Category.ELDERLY]
    assert [elderly.radius_km(h) for h in (0, 1, 3, 12, 1000)] == [5, 15, 50, 100, 100]
    # Before the issue (a clock a little behind another's): the first radius.
    assert child.radii_km(np.asarray([-1.0, 0.2])).tolist() == [100, 100]


@pytest.mark.parametrize("steps", [
    [], [[1, 10]], [[0, 10], [0, 20]], [[0, 10], [1, 5]], [[0, None], [1, 5]], [[0, 0]],
])
def test_a_schedule_only_widens(steps: list[list[float | None]]) -> None:
    with pytest.raises(ValueError):
        Schedule.of(steps)
    with pytest.raises(ValidationError):
        Settings(alert_schedule_child=steps)


def test_great_circle_distances() -> None:
    london, paris = (51.5074, -0.1278), (48.8566, 2.3522)
    assert distance_km(*london, *paris) == pytest.approx(343.5, abs=0.5)
    assert distance_km(0, 179.9, 0, -179.9) == pytest.approx(22.24, abs=0.01)  # across 180
    assert distance_km(89.9, 0, 89.9, 180) == pytest.approx(22.24, abs=0.01)  # over the pole
    far = distances_km(*london, np.asarray([-51.5074, np.nan]), np.asarray([179.8722, 0.0]))
    assert far[0] == pytest.approx(math.pi * 6371.0088, rel=1e-6) and np.isnan(far[1])
