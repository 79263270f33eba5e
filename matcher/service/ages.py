"""How old the missing person was, or is, on a given day: on a case photo, on the day of a
sighting, today.

Why it matters: faces of children change fast, so an examiner compares a case photo with a
sighting knowing both ages and the years between them (a 3-year gap at age 6 is a different
comparison from one at 16). Ages come from the date of birth when the case has one, else from
the age when missing plus the time since (`missing_since`). A photo's age is the one its
uploader gave, else derived from the day it was taken. Pure functions: no store, no clock
unless given.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

YEAR_DAYS = 365.2425


@dataclass(frozen=True)
class Born:
    """What a case says about the person's age."""

    date_of_birth: dt.date | None
    age_when_missing: float | None
    missing_since: dt.date


def age_on(born: Born, day: dt.date) -> float | None:
    """Age in years on `day` (None when the case gives neither birth date nor age)."""
    if born.date_of_birth is not None:
        return round((day - born.date_of_birth).days / YEAR_DAYS, 2)
    if born.age_when_missing is not None:
        return round(born.age_when_missing + (day - born.missing_since).days / YEAR_DAYS, 2)
    return None


def photo_age(born: Born, taken_on: dt.date | None, age_at_photo: float | None
              ) -> float | None:
    """The age on a case photo: the one given with it, else its date's."""
    if age_at_photo is not None:
        return round(float(age_at_photo), 2)
    return age_on(born, taken_on) if taken_on is not None else None


@dataclass(frozen=True)
class Ages:
    """The ages beside a comparison: on the case photo, on the sighting, today; and the years
    between the photo and the sighting (negative: the sighting is older than the photo)."""

    at_photo: float | None
    at_sighting: float | None
    now: float | None

    @property
    def gap(self) -> float | None:
        if self.at_photo is None or self.at_sighting is None:
            return None
        return round(self.at_sighting - self.at_photo, 2)


def ages(born: Born, taken_on: dt.date | None, age_at_photo: float | None,
         seen_on: dt.date, today: dt.date) -> Ages:
    return Ages(photo_age(born, taken_on, age_at_photo), age_on(born, seen_on),
                age_on(born, today))
