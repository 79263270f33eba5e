"""Library exceptions -> HTTP status codes with a JSON body {"error": code, "detail": text}.

The only place where the service's (with the store's it lets through) and the pipeline's
exceptions meet HTTP.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from matcher.api.deps import Forbidden, Unauthenticated
from matcher.api.limits import DecodeBusy, RateLimited
from matcher.embed.errors import ImageError, ImageTooLarge
from matcher.index import FaceIndexError
from matcher.service import (
    AlertExists,
    AlertRefused,
    CursorExpired,
    DuplicatePhoto,
    InvalidRecord,
    LastAdminKey,
    NotFound,
    UnsupportedPhoto,
)
from matcher.service.decision_notes import NoteRequired
from matcher.service.reindex import ReindexError


class UploadTooLarge(Exception):
    """More bytes than MATCHER_MAX_IMAGE_BYTES arrived (before any decoding)."""


def _json(status: int, error: str, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status,
                        headers=headers or None)


# Exceptions whose message is safe to show and whose mapping is just a status and a code.
_PLAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    Forbidden: (403, "forbidden"),
    UploadTooLarge: (413, "too_large"),
    UnsupportedPhoto: (422, "unsupported"),
    InvalidRecord: (422, "invalid"),
    NoteRequired: (422, "note_required"),
    DuplicatePhoto: (409, "duplicate_photo"),
    ReindexError: (409, "reindex_refused"),
    LastAdminKey: (409, "last_admin_key"),
    AlertRefused: (409, "alert_refused"),
    AlertExists: (409, "alert_exists"),
    CursorExpired: (410, "cursor_expired"),
    NotFound: (404, "not_found"),
}


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
               413: "too_large", 415: "unsupported_media_type"}


def _plain_handler(status: int, code: str) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(_: Request, exc: Exception) -> Response:
        return _json(status, code, str(exc))

    return handle


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own list of what failed, under the same "error" key as every other 4xx.
        return JSONResponse({"error": "invalid_request", "detail": jsonable_encoder(
            exc.errors(), exclude={"input"})}, status_code=422)

    @app.exception_handler(Unauthenticated)
    async def unauthenticated(_: Request, exc: Unauthenticated) -> JSONResponse:
        return _json(401, "unauthenticated", str(exc), **{"WWW-Authenticate": "Bearer"})

    @app.exception_handler(ImageError)
    async def bad_image(_: Request, exc: ImageError) -> JSONResponse:
        return _json(413 if isinstance(exc, ImageTooLarge) else 422, exc.reason, str(exc))

    for exc_type, (status, code) in _PLAIN_ERRORS.items():
        app.add_exception_handler(exc_type, _plain_handler(status, code))

    @app.exception_handler(RateLimited)
    async def rate_limited(_: Request, exc: RateLimited) -> JSONResponse:
        return _json(429, "rate_limited", str(exc),
                     **{"Retry-After": str(max(1, math.ceil(exc.retry_after)))})

    @app.exception_handler(DecodeBusy)
    async def decode_busy(_: Request, exc: DecodeBusy) -> JSONResponse:
        return _json(503, "busy", str(exc),
                     **{"Retry-After": str(max(1, math.ceil(exc.retry_after)))})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        # The router's own answers (unknown path, wrong method, a body that does not parse) in
        # the same shape as every other error.
        if isinstance(exc.__cause__, ClientDisconnect):
            # FastAPI's 400 for a JSON body whose client hung up: nobody is left to answer,
            # and the metrics middleware counts the hang-up as such (499).
            raise exc.__cause__
        if exc.status_code < 400:
            return Response(status_code=exc.status_code, headers=exc.headers)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return _json(exc.status_code, code, str(exc.detail), **(exc.headers or {}))

    @app.exception_handler(FaceIndexError)
    async def index_error(_: Request, exc: FaceIndexError) -> JSONResponse:
        return _json(500, "index_error", "the face index refused the change; see the logs")
