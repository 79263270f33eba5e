"""Reading an uploaded photo without trusting its declared size, and the form around it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, UploadFile
from fastapi.exceptions import RequestValidationError

from matcher.api.errors import UploadTooLarge


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
