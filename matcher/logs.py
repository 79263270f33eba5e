"""Structured logs: one JSON object per line (or plain text), tagged with the request id.

Log records carry ids, counts, scores and timings only. What a client sent (query strings,
headers, bodies, reporter contact, notes, file names) is never logged: the access log
(matcher/api/metrics.py) writes the route template, never the raw path.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from contextvars import ContextVar
from json import dumps
from typing import IO, Any

# Set by the HTTP middleware for the life of a request; anyio copies it into worker threads, so
# the service's own log lines carry the id of the request that caused them.
request_id: ContextVar[str | None] = ContextVar("matcher_request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=`
# (uvicorn's `color_message` repeats its message with terminal colour codes).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", "color_message",
}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class RequestIdFilter(logging.Filter):
    """Stamps the current request id (if any) on records that do not carry one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            rid = request_id.get()
            if rid is not None:
                record.request_id = rid
        return True


class JsonFormatter(logging.Formatter):
    """{"ts", "level", "logger", "msg", ...extra fields, "exc"?} on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        # json escapes newlines, so a traceback stays on its line.
        return dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value...` for people at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = extra_fields(record)
        if not extras:
            return text
        head, sep, tail = text.partition("\n")  # keep a traceback below the fields
        fields = " ".join(f"{key}={value}" for key, value in extras.items())
        return f"{head} {fields}{sep}{tail}"


def configure_logging(level: int | str = logging.INFO, json: bool = True,
                      stream: IO[str] | None = None) -> logging.Handler:
    """Routes every logger (uvicorn's too) to one handler on stderr; returns that handler.

    Replaces the root logger's handlers, so calling it again reconfigures rather than doubling
    lines. Logs go to stderr: stdout is kept for what a command prints (the first admin key).
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings become records too: every stderr line is JSON
    # uvicorn's loggers would otherwise keep their own text handlers.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler
