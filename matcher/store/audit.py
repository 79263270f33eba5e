"""The audit trail: one row per read or change of a case, candidate, photo or crop.

Rows are only ever added (no update or delete path exists); admins read and export them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from matcher.store.models import AuditEvent
from matcher.vocabulary import Actor


@dataclass(frozen=True)
class AuditEntry:
    action: str  # read, decide, create, update, delete, export
    object_type: str  # case, case_photo, sighting, sighting_photo, face_crop, candidate, ...
    object_id: int | str
    detail: dict[str, object] = field(default_factory=dict)


def record(session: Session, actor: Actor, *entries: AuditEntry) -> None:
    """Adds the entries to the session; they commit with the caller's transaction."""
    session.add_all(
        AuditEvent(api_key_id=actor.key_id, actor=actor.name, role=actor.role,
                   action=entry.action, object_type=entry.object_type,
                   object_id=str(entry.object_id), client=actor.client, detail=entry.detail)
        for entry in entries
    )
    session.flush()


def list_events(
    session: Session, *, object_type: str | None = None, object_id: int | str | None = None,
    actor: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
    after_id: int = 0, limit: int = 1000,
) -> list[AuditEvent]:
    """Events in the order they happened, filtered; page with `after_id`."""
    query = select(AuditEvent).where(AuditEvent.id > after_id)
    if object_type is not None:
        query = query.where(AuditEvent.object_type == object_type)
    if object_id is not None:
        query = query.where(AuditEvent.object_id == str(object_id))
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    return list(session.scalars(query.order_by(AuditEvent.id).limit(limit)))
