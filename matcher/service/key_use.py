"""A key's use: when it was last used (for the operator deciding what to revoke), and an audit
event for every request made with an admin key (an admin key opens keys, the audit trail and
reindexing: who used it, on which route, must be on record).

Last use is kept to the minute: writing the store on every request would put a write (and on
SQLite the only write lock) in front of every read. The key's row, read to authenticate, says
when the use was last noted; only a note older than `USE_RESOLUTION` is renewed, by an UPDATE
whose own condition makes racing servers write it once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from matcher.service.keys import authenticate
from matcher.service.records import KeyRecord
from matcher.store import AuditEntry, record, session_scope
from matcher.store.keys import note_key_used
from matcher.vocabulary import Actor

USE_RESOLUTION = dt.timedelta(minutes=1)


def authenticate_and_note(sessions: sessionmaker[Session], plaintext: str,
                          now: dt.datetime | None = None) -> KeyRecord | None:
    """`authenticate`, then the key's last use noted when the last note is a minute old."""
    key = authenticate(sessions, plaintext)
    if key is None:
        return None
    now = now or dt.datetime.now(dt.UTC)
    since = now - USE_RESOLUTION
    if key.last_used_at is not None and key.last_used_at >= since:
        return key
    with session_scope(sessions) as session:
        note_key_used(session, key.id, now, since)
    return dataclasses.replace(key, last_used_at=now)


def audit_admin_use(sessions: sessionmaker[Session], actor: Actor, method: str,
                    route: str) -> None:
    """One audit event for one request made with an admin key: who, and which route (the
    route's template, e.g. `DELETE /v1/keys/{key_id}`, with no query and no body)."""
    with session_scope(sessions) as session:
        record(session, actor, AuditEntry("use", "api_key", actor.key_id or "", {
            "method": method, "route": route}))
