"""Reading an uploaded photo without trusting its declared size, and the form around it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, UploadFile
from fastapi.exceptions import RequestValidationError

from matcher.api.errors import UploadTooLarge

# A sighting photo's time: no camera photo of a missing person predates 1900, and a phone's
# clock may run ahead, but not by more than a day.
EARLIEST_TAKEN_AT = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
CLOCK_SKEW = dt.timedelta(days=1)


async def read_upload(photo: UploadFile, max_bytes: int) -> bytes:
    data = await photo.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadTooLarge(f"the upload is larger than {max_bytes} bytes")
    return data


def form_fields(*names: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency that refuses (422 invalid_request) a multipart form with a field not in
    `names`, a field sent twice, or text with a NUL character.

    FastAPI would ignore an unknown field and keep the last of two: a misspelt `latitude` or a
    second photo would then vanish without a word to the sender.
    """
    known = frozenset(names)

    async def check(request: Request) -> None:
        form = await request.form()  # parsed once: Starlette keeps it for the endpoint
        errors: list[dict[str, Any]] = []
        for name in dict.fromkeys(form.keys()):
            values = form.getlist(name)
            if name not in known:
                errors.append(_error("extra_forbidden", name, f"unknown field; the fields are "
                                     f"{', '.join(sorted(known))}"))
            elif len(values) > 1:
                errors.append(_error("repeated", name, f"sent {len(values)} times; send it once"))
            elif any(isinstance(v, str) and "\x00" in v for v in values):
                errors.append(_error("string_nul", name, "must not contain NUL characters"))
        if errors:
            raise RequestValidationError(errors)

    return check


def _error(kind: str, name: str, message: str) -> dict[str, Any]:
    return {"type": kind, "loc": ("body", name), "msg": message}


def taken_at_utc(taken_at: dt.datetime | None, name: str = "taken_at") -> dt.datetime | None:
    """When a photo was taken, in UTC (a time without a zone is UTC), or a 422 for a time
    that cannot be a photo's: before 1900, more than a day ahead, or out of datetime's range
    once in UTC (0001-01-01 at +14:00)."""
    if taken_at is None:
        return None
    try:
        utc = (taken_at if taken_at.tzinfo else taken_at.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except OverflowError:
        utc = None
    latest = dt.datetime.now(dt.UTC) + CLOCK_SKEW
    if utc is None or not EARLIEST_TAKEN_AT <= utc <= latest:
        raise RequestValidationError([_error(
            "datetime_range", name, f"must lie between {EARLIEST_TAKEN_AT.date()} and a day "
            f"from now, got {taken_at.isoformat()}")])
    return utc
