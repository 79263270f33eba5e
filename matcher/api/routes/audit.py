"""Admins read and export the audit trail; reading it is audited too."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from matcher.api.deps import Admin, MatcherDep, WorkerDep
from matcher.api.params import AfterId, Since, Until
from matcher.api.review_schemas import AuditEventPublic, AuditPage
from matcher.service import AuditRecord
from matcher.service.audit import AuditFilter, export_audit, read_audit

router = APIRouter(tags=["audit"])

COLUMNS = ("id", "at", "actor", "role", "api_key_id", "client", "action", "object_type",
           "object_id", "detail")
# A cell a spreadsheet would run as a formula is quoted (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _csv_row(event: AuditRecord) -> list[str]:
    return [_cell(v) for v in (
        event.id, event.at.isoformat(), event.actor, event.role, event.api_key_id, event.client,
        event.action, event.object_type, event.object_id,
        json.dumps(event.detail, sort_keys=True, default=str))]


def _csv(batches: Iterator[list[AuditRecord]]) -> Iterator[str]:
    """CSV text, a batch of events at a time (sync: Starlette iterates it in a thread)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    yield out.getvalue()
    for events in batches:
        out.seek(0)
        out.truncate()
        writer.writerows(_csv_row(event) for event in events)
        yield out.getvalue()


@router.get("/audit", response_model=AuditPage,
            responses={200: {"content": {"text/csv": {}}}})
async def get_audit(
    actor: Admin, matcher: MatcherDep, worker: WorkerDep,
    object_type: str | None = None,
    object_id: str | None = None,
    by: Annotated[str | None, Query(alias="actor", description="the key's name")] = None,
    since: Since = None,
    until: Until = None,
    after_id: AfterId = 0,
    limit: Annotated[int | None, Query(ge=1, le=1000, description=(
        "JSON: page size (default 100); CSV: at most this many rows (default all)"))] = None,
    output: Annotated[Literal["json", "csv"] | None, Query(alias="format")] = None,
    accept: Annotated[str | None, Header()] = None,
) -> AuditPage | StreamingResponse:
    """Events in the order they happened. JSON pages by default; `format=csv` (or
    `Accept: text/csv`) streams every matching event as CSV with a header row."""
    filters = AuditFilter(object_type=object_type, object_id=object_id, actor=by,
                          since=_utc(since), until=_utc(until))
    as_csv = output == "csv" or (output is None and "text/csv" in (accept or ""))
    if as_csv:
        batches = await worker(export_audit, matcher, actor, filters, after_id, limit)
        return StreamingResponse(_csv(batches), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": 'attachment; filename="audit.csv"',
            "Cache-Control": "no-store"})
    size = limit or 100
    events = await worker(read_audit, matcher, actor, filters, after_id, size)
    return AuditPage(items=[AuditEventPublic.model_validate(e) for e in events],
                     next_after_id=events[-1].id if len(events) == size else None)
