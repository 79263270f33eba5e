"""Reading the audit trail (admins): a page at a time, or every matching event for export.

Reading the trail is itself audited (object type "audit"), in the same transaction as the
read; an export is recorded before its first row is sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from sqlalchemy.orm import Session

from matcher.service.records import AuditRecord
from matcher.service.runtime import Runtime
from matcher.store import AuditEntry, list_events, record, session_scope
from matcher.vocabulary import Actor

EXPORT_BATCH = 1000


@dataclass(frozen=True)
class AuditFilter:
    object_type: str | None = None
    object_id: str | None = None
    actor: str | None = None  # the key's name
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # exclusive

    def detail(self) -> dict[str, object]:
        return {name: value.isoformat() if isinstance(value, dt.datetime) else value
                for name, value in asdict(self).items() if value is not None}


def read_audit(matcher: Runtime, actor: Actor, filters: AuditFilter, after_id: int = 0,
               limit: int = 100) -> list[AuditRecord]:
    """Events in the order they happened, after `after_id`; the read is audited with it."""
    with session_scope(matcher.sessions) as session:
        events = _events(session, filters, after_id, limit)
        record(session, actor, AuditEntry("read", "audit", "events", {
            **filters.detail(), "after_id": after_id, "count": len(events)}))
    return events


def export_audit(matcher: Runtime, actor: Actor, filters: AuditFilter, after_id: int = 0,
                 limit: int | None = None) -> Iterator[list[AuditRecord]]:
    """Records the export now, then returns an iterator of batches of the matching events
    (each batch read in its own short session, so a long export holds no transaction)."""
    with session_scope(matcher.sessions) as session:
        record(session, actor, AuditEntry("export", "audit", "events", {
            **filters.detail(), "after_id": after_id, "limit": limit}))
    return _batches(matcher, filters, after_id, limit)


def _batches(matcher: Runtime, filters: AuditFilter, after_id: int,
             limit: int | None) -> Iterator[list[AuditRecord]]:
    left = limit
    while left is None or left > 0:
        size = EXPORT_BATCH if left is None else min(EXPORT_BATCH, left)
        with matcher.sessions() as session:
            events = _events(session, filters, after_id, size)
        if not events:
            return
        yield events
        after_id = events[-1].id
        if left is not None:
            left -= len(events)
        if len(events) < size:
            return


def _events(session: Session, filters: AuditFilter, after_id: int,
            limit: int) -> list[AuditRecord]:
    return [AuditRecord.of(event) for event in list_events(
        session, **asdict(filters), after_id=after_id, limit=limit)]
