"""Limits on hostile traffic: request size, tip-app upload rate, NUL bytes in URLs, CORS.

- `BodyLimit` (ASGI) refuses a request whose Content-Length is over its limit with 413 before
  the app or the body is touched, and counts the bytes of bodies that come without one
  (chunked), cutting them off with 413 once over. Multipart uploads may reach
  `settings.request_bytes_limit`; any other body `settings.max_json_request_bytes`.
- `TipRateLimiter` is a token bucket per tip-app key for `POST /v1/sightings`: a flood from
  one app (or a stolen key) cannot fill the worker queue for every other app.
- `DecodeBudget` bounds the pixels decoded at once (`settings.decode_pixel_budget`): an
  upload reserves its header's width x height before it enters an embedding worker, and waits
  (in the event loop, holding no thread) until that many are free, or gets 503 `busy`.
- CORS is closed unless `settings.cors_origins` names origins.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import Depends, FastAPI, Request
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from matcher.api.deps import TipApp
from matcher.config import Settings
from matcher.embed.image import declared_pixels
from matcher.vocabulary import Actor

log = logging.getLogger(__name__)


class RateLimited(Exception):
    """Too many uploads from one key (429); `retry_after` is in seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _BodyTooLarge(Exception):
    """Raised into the app from `receive` once a body passes the limit."""


async def _refuse(send: Send, status: int, error: str, detail: str) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _declares_body(scope: Scope) -> bool:
    declared = _content_length(scope)
    if declared is not None:
        return declared > 0
    return any(name == b"transfer-encoding" for name, _ in scope.get("headers", ()))


def _content_length(scope: Scope) -> int | None:
    """The declared body size; -1 when the header is not a number (uvicorn refuses those
    itself, other servers may not)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else -1
    return None


class BodyLimit:
    """413 for bodies over their limit, before they are read; 400 for a NUL in the URL.

    A declared Content-Length over the limit is answered at once without calling the app (the
    server then closes the connection rather than read the rest). A body without one is
    counted as it streams in: past the limit, `receive` raises into the app, whatever the app
    tries to answer is dropped and the client gets the 413 instead.

    An answer given before the body was read to its end (a refused key, a tip app over its
    rate) says `Connection: close`: the server then closes the connection instead of receiving
    and discarding the rest of an upload nobody will read, to keep the connection alive.
    """

    def __init__(self, app: ASGIApp, max_upload_bytes: int, max_other_bytes: int) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_other_bytes = max_other_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A NUL has no meaning in a URL, and PostgreSQL refuses it in text: stop it here rather
        # than as a 500 from wherever a path or query value meets the database.
        raw = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        query = scope.get("query_string", b"")
        if b"%00" in raw or b"\x00" in raw or b"%00" in query or b"\x00" in query:
            await _refuse(send, 400, "invalid_request", "the URL contains a NUL byte")
            return
        declared = _content_length(scope)
        if declared == -1:
            await _refuse(send, 400, "invalid_request", "Content-Length is not a number")
            return
        limit = self._limit(scope)
        if declared is not None and declared > limit:
            await _refuse(send, 413, "too_large", _too_large(limit, declared))
            return
        await self._counted(scope, receive, send, limit)

    def _limit(self, scope: Scope) -> int:
        for name, value in scope.get("headers", ()):
            if name == b"content-type" and value.lower().startswith(b"multipart/form-data"):
                return self.max_upload_bytes
        return self.max_other_bytes

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        over = started = False
        unread = _declares_body(scope)

        async def counted_receive() -> Message:
            nonlocal received, over, unread
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise _BodyTooLarge(_too_large(limit))
                unread = unread and message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:  # the app's answer to a body we cut off: the client gets the 413
                return
            if message["type"] == "http.response.start":
                started = True
                if unread:
                    message = {**message, "headers": [
                        *message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not over:
                raise
            log.debug("a request body passed %d bytes", limit, exc_info=True)
        if over and not started:
            await _refuse(send, 413, "too_large", _too_large(limit))


def _too_large(limit: int, size: int | None = None) -> str:
    told = "" if size is None else f" ({size} bytes)"
    return f"the request body is larger than {limit} bytes{told}"


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TipRateLimiter:
    """A token bucket per key: `burst` uploads at once, refilled at `per_minute`.

    In memory, one per process: behind several processes each allows its own rate. Buckets
    are keyed by API key id, so the table is as large as the number of tip-app keys at most.
    """

    def __init__(self, per_minute: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[int | None, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key_id: int | None) -> float:
        """Takes a token: 0.0 when there was one, else the seconds until there is one."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate


def get_tip_limiter(request: Request) -> TipRateLimiter:
    limiter: TipRateLimiter = request.app.state.tip_limiter
    return limiter


async def tip_upload_allowed(
    actor: TipApp, limiter: Annotated[TipRateLimiter, Depends(get_tip_limiter)]
) -> Actor:
    """The tip app's actor, once its key has an upload left (RateLimited otherwise)."""
    wait = limiter.take(actor.key_id)
    if wait > 0:
        log.info("tip-app key %d is over its upload rate", actor.key_id)
        raise RateLimited(f"this key may send {limiter.rate * 60:g} sightings a minute (bursts "
                          f"of {limiter.burst:g}); retry in {math.ceil(wait)} s", wait)
    return actor


RateLimitedTipApp = Annotated[Actor, Depends(tip_upload_allowed)]


class DecodeBusy(Exception):
    """No room in the decode budget within `decode_wait_s` (503); `retry_after` in seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Waiter:
    pixels: int
    granted: anyio.Event


class DecodeBudget:
    """A semaphore weighted by pixels, first come first served (a large photo is not passed
    over forever by small ones). Used from the event loop only, so it needs no lock."""

    def __init__(self, pixels: int, max_image_pixels: int, wait_s: float) -> None:
        self.capacity = pixels
        self.free = pixels
        self.max_image_pixels = max_image_pixels
        self.wait_s = wait_s
        self._waiting: deque[_Waiter] = deque()

    def weight(self, data: bytes) -> int:
        """What a photo reserves: its declared pixels; 0 for one `load_image` refuses before
        decoding (too many pixels, or no header it can read)."""
        pixels = declared_pixels(data)
        return pixels if pixels <= self.max_image_pixels else 0

    @asynccontextmanager
    async def reserve(self, data: bytes) -> AsyncIterator[None]:
        pixels = min(self.weight(data), self.capacity)
        if self._waiting or self.free < pixels:
            await self._wait(pixels)
        else:
            self.free -= pixels
        try:
            yield
        finally:
            self.free += pixels
            self._grant()

    async def _wait(self, pixels: int) -> None:
        waiter = _Waiter(pixels, anyio.Event())
        self._waiting.append(waiter)
        try:
            with anyio.move_on_after(self.wait_s):
                await waiter.granted.wait()
        except BaseException:  # the client left while waiting: hand back what it was given
            self._leave(waiter)
            raise
        if not waiter.granted.is_set():
            self._leave(waiter)
            log.warning("an upload of %d pixels waited %g s for the decode budget", pixels,
                        self.wait_s)
            raise DecodeBusy(f"the server is decoding {self.capacity - self.free} pixels of "
                             f"photos; try again shortly", self.wait_s)

    def _leave(self, waiter: _Waiter) -> None:
        if waiter.granted.is_set():
            self.free += waiter.pixels
        else:
            self._waiting.remove(waiter)
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self.free >= self._waiting[0].pixels:
            waiter = self._waiting.popleft()
            self.free -= waiter.pixels
            waiter.granted.set()


def get_decode_budget(request: Request) -> DecodeBudget:
    budget: DecodeBudget = request.app.state.decode_budget
    return budget


DecodeBudgetDep = Annotated[DecodeBudget, Depends(get_decode_budget)]


def install(app: FastAPI, settings: Settings) -> None:
    """The body limit, CORS (when origins are set), the tip-app limiter and the decode budget.
    Call it before the metrics middleware is added, so the access log and the metrics see their
    answers too."""
    app.state.tip_limiter = TipRateLimiter(settings.tip_rate_per_minute, settings.tip_burst)
    app.state.decode_budget = DecodeBudget(settings.decode_pixel_budget,
                                           settings.max_image_pixels, settings.decode_wait_s)
    app.add_middleware(BodyLimit, max_upload_bytes=settings.request_bytes_limit,
                       max_other_bytes=min(settings.max_json_request_bytes,
                                           settings.request_bytes_limit))
    if settings.cors_origins:
        # Outside the body limit, so a browser can read the 413 too. No credentials: keys
        # travel in headers, never in cookies.
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "If-None-Match",
                           "X-Request-ID"],
            expose_headers=["ETag", "Retry-After", "X-Request-ID"], max_age=600)
