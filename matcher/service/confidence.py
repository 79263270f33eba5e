"""What a candidate's distance means here and now, from the running model's calibrations
(matcher/calibration.py): the threshold in force and the expected false candidates."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from matcher.calibration import Calibration
from matcher.service.context import Matcher
from matcher.store import Case


def calibration_of(matcher: Matcher, category: str) -> Calibration | None:
    """The category's own calibration, else one made for any category, else None."""
    return matcher.calibrations.get(category) or matcher.calibrations.get("any")


def threshold(matcher: Matcher, category: str) -> float:
    """`match_false_per_search` turned into a distance at the current gallery size when it is
    set and a calibration exists; `match_threshold` otherwise."""
    target = matcher.settings.match_false_per_search
    calibration = calibration_of(matcher, category)
    if target is None or calibration is None:
        return matcher.match_threshold
    return calibration.threshold_for(target, len(matcher.index))


def case_thresholds(matcher: Matcher, session: Session, case_ids: Iterable[int]
                    ) -> dict[int, float]:
    """The threshold in force for each case, by its category."""
    wanted = set(case_ids)
    if not wanted:
        return {}
    rows = session.execute(select(Case.id, Case.category).where(Case.id.in_(wanted)))
    by_category: dict[str, float] = {}
    out = {}
    for case_id, category in rows:
        key = str(category.value if hasattr(category, "value") else category)
        if key not in by_category:
            by_category[key] = threshold(matcher, key)
        out[int(case_id)] = by_category[key]
    return out


def expected_false(matcher: Matcher, category: str, distance: float) -> float | None:
    """Expected false candidates per search at least this close, at today's gallery size
    (None without a calibration for the running model)."""
    calibration = calibration_of(matcher, category)
    if calibration is None:
        return None
    return float(calibration.expected_false(distance, len(matcher.index)))
