"""Parameters many routes share. Ids are positive 64-bit integers, as the store keeps them:
a larger number is refused here (422) instead of overflowing the database driver (a 500)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

MAX_ID = 2**63 - 1

Id = Annotated[int, Path(ge=1, le=MAX_ID)]
# A page cursor: the last id of the previous page (0: from the start).
AfterId = Annotated[int, Query(ge=0, le=MAX_ID, description="the last id of the previous page")]
