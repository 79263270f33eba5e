"""How likely a candidate is, on one scale for every model: the calibrated false match rate of
its distance (per compared face, matcher/calibration.py), which the review queue orders by.

A distance means nothing across models (a PLDA projection's are about ten times a unit-length
descriptor's); the rate of strangers that come as close is the same kind of number whichever
model measured it. It comes from the calibration of the case's category, else `any`, of the
model that found the candidate, and is stored with the candidate (`rated`, when it is stored).
Candidates stored before their model had a calibration get it at the next start
(`fill_false_match_rates`); without a calibration it stays None and the queue puts the
candidate after the rated ones, by distance / threshold.

Imports no other use case: `startup` calls the fill at start.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.orm import Session

from matcher.calibration import Calibration, for_category
from matcher.store import NewCandidate
from matcher.store.candidates import OPEN, Unrated, set_false_match_rates, unrated_candidates
from matcher.store.cases import case_categories
from matcher.vocabulary import Category

if TYPE_CHECKING:
    from matcher.service.runtime import Runtime

log = logging.getLogger(__name__)

FILL_BATCH = 1000


def calibration_for(calibrations: Mapping[str, Calibration], category: str,
                    model_id: str) -> Calibration | None:
    """The category's calibration, else the one for any category, if it is of `model_id`."""
    found = for_category(calibrations, category)
    return found if found is not None and found.model_id == model_id else None


def rated(matcher: Runtime, session: Session, rows: Sequence[NewCandidate]
          ) -> list[NewCandidate]:
    """The rows with the false match rate of their distance (None without a calibration)."""
    categories = case_categories(session, {row.case_id for row in rows})
    out = []
    for row in rows:
        category = categories.get(row.case_id)
        calibration = (calibration_for(matcher.calibrations, category.value, row.model_id)
                       if category is not None else None)
        rate = (float(calibration.false_match_rate(row.distance))
                if calibration is not None else None)
        out.append(replace(row, false_match_rate=rate))
    return out


def fill_false_match_rates(matcher: Runtime, batch_size: int = FILL_BATCH) -> int:
    """Rates the serving model's open candidates (pending, needs_info) that have no rate and
    whose case category it has a calibration for: those stored before the calibration was made
    (or before store revision 0008). A batch at a time, each one UPDATE in its own transaction,
    walking the queue's index; returns how many were filled."""
    model_id = matcher.model_id
    by_category = {category: calibration for category in Category
                   if (calibration := calibration_for(matcher.calibrations, category.value,
                                                      model_id)) is not None}
    if not by_category:
        return 0
    filled = 0
    for status in OPEN:
        after: Unrated | None = None
        while True:
            with matcher.sessions() as session:
                batch = unrated_candidates(session, model_id, by_category, status, after,
                                           batch_size)
                if not batch:
                    break
                set_false_match_rates(session, _rates(by_category, batch))
                session.commit()
            filled += len(batch)
            after = batch[-1]
            if filled % (100 * batch_size) < len(batch):  # a long first fill shows progress
                log.info("rating open candidates of %s: %d so far", model_id, filled)
    if filled:
        log.info("rated %d open candidates of %s with its calibrations", filled, model_id)
    return filled


def _rates(by_category: Mapping[Category, Calibration], batch: Sequence[Unrated]
           ) -> list[tuple[int, float]]:
    """(candidate id, rate) of a batch, one vectorised lookup per category."""
    out: list[tuple[int, float]] = []
    for category, calibration in by_category.items():
        rows = [row for row in batch if row.category == category]
        if rows:
            rates = calibration.false_match_rate(np.array([row.distance for row in rows]))
            out += [(row.id, float(rate)) for row, rate in zip(rows, rates, strict=True)]
    return out
