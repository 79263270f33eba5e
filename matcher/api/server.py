"""`matcher serve`'s uvicorn, guarded against clients that open connections and stall.

uvicorn closes an idle keep-alive connection (`timeout_keep_alive`), but not one that never
finishes its request head, nor an upload whose body stops arriving; and it accepts connections
until the process runs out of file descriptors, after which asyncio logs every failed accept.
`GuardedH11Protocol` adds, per connection:

- a head deadline: the request head (request line and headers) must be complete within
  `header_timeout_s` of the connection opening, or of the first byte of the next request on a
  kept-alive connection; else the connection is closed;
- a body floor: while a body is being received, each `body_timeout_s` window must bring at
  least `body_min_rate` bytes a second (and at least one byte); else the connection is closed,
  and the app sees the client as gone. Windows in which uvicorn had stopped reading because the
  app was not consuming the body do not count against the client;
- a cap of `max_connections` open connections: a new one over the cap first closes the oldest
  connection that is still waiting for a request head (a flood of half-open connections cannot
  lock out real clients); when every connection is busy with a request, the new one is
  answered 503 and closed.

`GuardedServer` also logs "out of system resource" accept errors (EMFILE and the like) at most
once per `accept_error_log_interval_s`, with the number left out. The guards work on the
socket, so they hold with or without a reverse proxy in front.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from matcher.config import Settings

log = logging.getLogger(__name__)

_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
         b"connection: close\r\ncontent-length: 72\r\n\r\n"
         b'{"error": "busy", "detail": "too many open connections; try again later"}')
# File descriptors kept for everything but client connections: the store, photos, models, logs.
FD_RESERVE = 256


@dataclass
class ConnectionGuard:
    """The limits and the state that all of one server's connections share."""

    header_timeout_s: float
    body_timeout_s: float
    body_min_rate: int
    max_connections: int
    waiting: OrderedDict[GuardedH11Protocol, None] = field(default_factory=OrderedDict)
    evicted: int = 0
    refused: int = 0
    timed_out: int = 0


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a head deadline, a body floor and a connection cap."""

    guard: ConnectionGuard  # set on the subclass `protocol_class` makes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._phase: str | None = None  # what the timer waits for: "head", "body" or nothing
        self._window_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        guard = self.guard
        if len(self.connections) > guard.max_connections:
            if guard.waiting:
                oldest, _ = guard.waiting.popitem(last=False)
                guard.evicted += 1
                oldest._close()
            else:
                guard.refused += 1
                transport.write(_BUSY)
                self._close()
                return
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self.guard.waiting.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._window_bytes += len(data)
            if self._phase != "body":
                self.guard.waiting.pop(self, None)
                self._start_window()
        elif state is h11.IDLE:
            if self._phase != "head":  # the next request's first bytes on a kept connection
                self._await_head()
        else:  # the whole request is in: the app has it, no deadline on the client
            self.guard.waiting.pop(self, None)
            self._cancel()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # arms uvicorn's keep-alive timer
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._cancel()
            self.guard.waiting[self] = None  # idle: first to go when the cap is reached

    def _await_head(self) -> None:
        self._cancel()
        self.guard.waiting[self] = None
        self._phase = "head"
        self._timer = self.loop.call_later(self.guard.header_timeout_s, self._head_overdue)

    def _head_overdue(self) -> None:
        self._timer, self._phase = None, None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.guard.timed_out += 1
            log.debug("closing a connection whose request head took over %g s",
                      self.guard.header_timeout_s)
            self._close()

    def _start_window(self) -> None:
        self._cancel()
        self._window_bytes = 0
        self._phase = "body"
        self._timer = self.loop.call_later(self.guard.body_timeout_s, self._window_over)

    def _window_over(self) -> None:
        self._timer, self._phase = None, None
        if self.conn.their_state is not h11.SEND_BODY or self.transport.is_closing():
            return
        floor = max(1.0, self.guard.body_min_rate * self.guard.body_timeout_s)
        if self._window_bytes < floor and not self.flow.read_paused:
            self.guard.timed_out += 1
            log.info("closing an upload that sent %d bytes in %g s (the floor is %d B/s)",
                     self._window_bytes, self.guard.body_timeout_s, self.guard.body_min_rate)
            self._close()
            return
        self._start_window()

    def _cancel(self) -> None:
        self._phase = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _close(self) -> None:
        self._cancel()
        self.guard.waiting.pop(self, None)
        if not self.transport.is_closing():
            self.transport.close()


def protocol_class(guard: ConnectionGuard) -> type[GuardedH11Protocol]:
    return type("MatcherH11Protocol", (GuardedH11Protocol,), {"guard": guard})


class AcceptErrorLog:
    """A loop exception handler: accept errors once per interval, everything else as usual."""

    def __init__(self, interval_s: float, clock: Any = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.last: float | None = None
        self.left_out = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "out of system resource" not in str(context.get("message", "")):
            loop.default_exception_handler(context)
            return
        now = self.clock()
        if self.last is not None and now - self.last < self.interval_s:
            self.left_out += 1
            return
        error = context.get("exception")
        log.error("cannot accept connections: %s (%d more such errors in the last %g s); "
                  "the process is out of file descriptors or memory", error, self.left_out,
                  self.interval_s)
        self.last, self.left_out = now, 0


class GuardedServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, accept_log: AcceptErrorLog) -> None:
        super().__init__(config)
        self.accept_log = accept_log

    async def serve(self, sockets: Any = None) -> None:
        asyncio.get_running_loop().set_exception_handler(self.accept_log)
        await super().serve(sockets)


def connection_cap(settings: Settings) -> int:
    """`max_connections`, after raising the soft file-descriptor limit to make room for it (up
    to the hard limit); lowered, with a warning, when even the hard limit is too small."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = settings.max_connections + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft = raised
    if soft != resource.RLIM_INFINITY and soft < wanted:
        cap = max(1, soft - FD_RESERVE)
        log.warning("the file-descriptor limit is %d: serving at most %d connections, not %d "
                    "(raise `ulimit -n`)", soft, cap, settings.max_connections)
        return cap
    return settings.max_connections


def build_server(app: Any, settings: Settings, host: str, port: int) -> GuardedServer:
    """The uvicorn server `matcher serve` runs, with every connection limit of `settings`."""
    cap = connection_cap(settings)
    guard = ConnectionGuard(settings.header_timeout_s, settings.body_timeout_s,
                            settings.body_min_rate, cap)
    # Our handler formats uvicorn's lines too (log_config=None), and our access log, which
    # writes route templates instead of raw paths and query strings, replaces uvicorn's.
    # limit_concurrency: requests in flight past the cap get uvicorn's 503 too.
    config = uvicorn.Config(app, host=host, port=port, log_config=None, log_level="info",
                            access_log=False, http=protocol_class(guard),
                            timeout_keep_alive=settings.keep_alive_s, limit_concurrency=cap + 1,
                            backlog=min(2048, cap))
    return GuardedServer(config, AcceptErrorLog(settings.accept_error_log_interval_s))
