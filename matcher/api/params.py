"""Parameters many routes share, checked where they enter.

Ids are positive 64-bit integers, as the store keeps them: a larger number is refused here
(422) instead of overflowing the database driver (a 500). Times are taken to UTC here, so one
that falls outside datetime's range there (0001-01-01 at +14:00) is a 422 too.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator

from matcher.vocabulary import MAX_ID

Id = Annotated[int, Path(ge=1, le=MAX_ID)]
# A page cursor: the last id of the previous page (0: from the start).
AfterId = Annotated[int, Query(ge=0, le=MAX_ID, description="the last id of the previous page")]


def utc(value: dt.datetime | None) -> dt.datetime | None:
    """The time in UTC (a time without a zone is UTC already)."""
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    try:
        return aware.astimezone(dt.UTC)
    except OverflowError as error:
        raise ValueError("is outside the range of dates once converted to UTC") from error


Since = Annotated[dt.datetime | None, Query(description="inclusive; UTC if no zone"),
                  AfterValidator(utc)]
Until = Annotated[dt.datetime | None, Query(description="exclusive; UTC if no zone"),
                  AfterValidator(utc)]
