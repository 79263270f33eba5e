"""Upload forms, read only after the route's key, role and rate checks; the photo in them,
without trusting its declared size.

A route with File or Form parameters has FastAPI parse the whole body (up to the body limit)
before it solves the route's dependencies: a wrong key, a key of the wrong role or a tip app
over its rate would be refused only once the upload had been received and spooled. Upload
routes therefore declare no body parameter; the handler, which runs after every dependency,
reads the form with `read_form`, and `multipart_body` documents it from the same model.

The form is parsed by starlette's multipart parser with two changes (`_FormParser`): a text
part that is not valid in the form's charset (UTF-8 unless the request says otherwise) is a
422 naming the field, where starlette stored it decoded as Latin-1 (mojibake, with a 201); and
a part of a file field (the photo) is a file whether or not it names a file. A file name is
optional in multipart (RFC 7578, 4.2), clients leave it out (httpx for an empty name, curl's
`-F photo=<file`), and nothing here reads it: such a photo was taken for a text field and
refused with "must not contain NUL characters", the bytes of the photo.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from contextlib import aclosing, asynccontextmanager
from typing import Any, TypeVar

from fastapi import HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, Headers
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from matcher.api.errors import UploadTooLarge

FormT = TypeVar("FormT", bound=BaseModel)

# Starlette's defaults, which FastAPI applied when these routes had File/Form parameters:
# past them the parser stops with a 400 (a text part over 1 MiB, say).
MAX_FORM_FILES = 1000
MAX_FORM_FIELDS = 1000
MAX_FORM_PART_BYTES = 1024 * 1024

# A sighting photo's time: no camera photo of a missing person predates 1900, and a phone's
# clock may run ahead, but not by more than a day.
EARLIEST_TAKEN_AT = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
CLOCK_SKEW = dt.timedelta(days=1)


async def read_upload(photo: UploadFile, max_bytes: int) -> bytes:
    data = await photo.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadTooLarge(f"the upload is larger than {max_bytes} bytes")
    return data


def multipart_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting `model` as the route's multipart request body: FastAPI sees
    no body parameter, and a schema written by hand would drift from what `read_form` checks."""
    schema = model.model_json_schema()
    if "$defs" in schema:  # their "#/$defs/..." refs would point nowhere in the OpenAPI document
        raise TypeError(f"{model.__name__}: a form model holds no nested models or enums")
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}},
        # FastAPI lists its 422 only for routes with parameters; the form is validated too. The
        # component is FastAPI's, there as long as any route takes a parameter.
        "responses": {"422": {"description": "Validation Error", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}},
    }


class _FormParser(MultiPartParser):
    """Starlette's parser; the parts of `file_fields` are files even without a file name, and
    the names of text parts whose bytes do not decode are kept in `undecodable`."""

    def __init__(self, headers: Headers, stream: AsyncGenerator[bytes, None],
                 file_fields: frozenset[str]) -> None:
        super().__init__(headers, stream, max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS,
                         max_part_size=MAX_FORM_PART_BYTES)
        self.file_fields = file_fields
        self.undecodable: list[str] = []

    def on_headers_finished(self) -> None:
        part = self._current_part
        disposition = part.content_disposition or b""
        _, options = parse_options_header(disposition)
        name = options.get(b"name", b"").decode("latin-1")
        if name in self.file_fields and b"filename" not in options:
            # What makes starlette spool a file (to the upload's limit, not a text part's).
            part.content_disposition = disposition + b'; filename=""'
        super().on_headers_finished()

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None:
            try:
                part.data.decode(self._charset)
            except UnicodeDecodeError:
                self.undecodable.append(part.field_name)
        super().on_part_end()


async def _parse(request: Request, file_fields: frozenset[str]) -> tuple[FormData, list[str]]:
    """The form, and the text fields that did not decode; as `request.form` otherwise."""
    content_type, _ = parse_options_header(request.headers.get("Content-Type"))
    if content_type != b"multipart/form-data":  # url-encoded, or no form at all
        form = await request.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS,
                                  max_part_size=MAX_FORM_PART_BYTES)
        return form, []
    try:
        async with aclosing(request.stream()) as stream:
            parser = _FormParser(request.headers, stream, file_fields)
            return await parser.parse(), parser.undecodable
    except MultiPartException as exc:
        raise HTTPException(status_code=400, detail=exc.message) from exc


def _file_fields(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(name for name, field in model.model_fields.items()
                     if field.annotation is UploadFile)


@asynccontextmanager
async def read_form(request: Request, model: type[FormT]) -> AsyncIterator[FormT]:
    """The request's form as `model`, its files closed on leaving the block; a 422 like any
    other validation error for a form that does not fit. Call it from the handler, never from
    a dependency: dependencies may run before the key is checked."""
    form, undecodable = await _parse(request, _file_fields(model))
    try:
        _refuse_odd_fields(form, model.model_fields, undecodable)
        # As FastAPI reads a form: an empty text field, or a file input left empty (no name, no
        # bytes), is a field not sent.
        values = {name: value for name, value in form.items() if not _blank(value)}
        try:
            parsed = model.model_validate(values)
        except ValidationError as error:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                          for e in error.errors(include_url=False)]) from error
        yield parsed
    finally:
        await form.close()


def _blank(value: str | StarletteUploadFile) -> bool:
    if isinstance(value, StarletteUploadFile):
        return value.filename == "" and value.size == 0
    return value == ""


def _refuse_odd_fields(form: FormData, known: Iterable[str], undecodable: list[str]) -> None:
    """422 for a field not in `known`, a field sent twice, text that is not valid UTF-8 (the
    form's charset) or text with a NUL character.

    Validation alone would ignore an unknown field and keep the last of two: a misspelt
    `latitude` or a second photo would then vanish without a word to the sender.
    """
    known = frozenset(known)
    errors: list[dict[str, Any]] = []
    for name in dict.fromkeys(form.keys()):
        values = form.getlist(name)
        if name not in known:
            errors.append(_error("extra_forbidden", name, f"unknown field; the fields are "
                                 f"{', '.join(sorted(known))}"))
        elif len(values) > 1:
            errors.append(_error("repeated", name, f"sent {len(values)} times; send it once"))
        elif name in undecodable:
            errors.append(_error("string_unicode", name, "is not valid UTF-8 text (or the "
                                 "charset the request names)"))
        elif any(isinstance(v, str) and "\x00" in v for v in values):
            errors.append(_error("string_nul", name, "must not contain NUL characters"))
    if errors:
        raise RequestValidationError(errors)


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
