"""What an operator does with keys, from the console or as an admin over HTTP: list them, make
one, revoke one. Each creation and revocation is audited in the transaction that makes it, so
the trail can never show a key that does not exist, nor miss one that does.

The plain `new_key` / `revoke` of keys.py stay for start-up and for tests that seed keys; every
operator's path comes through here.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from matcher.service.records import KeyRecord
from matcher.store import AuditEntry, create_key, list_keys, record, revoke_key, session_scope
from matcher.vocabulary import Actor, Role

OBJECT_TYPE = "api_key"


def key_list(sessions: sessionmaker[Session], include_revoked: bool = True) -> list[KeyRecord]:
    """Every key by id, without its hash: who holds it, its role, when made, last used and
    revoked."""
    with sessions() as session:
        return [KeyRecord.of(row) for row in list_keys(session, include_revoked)]


def create_key_as(sessions: sessionmaker[Session], actor: Actor, role: Role | str,
                  name: str) -> tuple[KeyRecord, str]:
    """A new key and its plaintext (shown once); the creation is audited with who made it."""
    with session_scope(sessions) as session:
        row, plaintext = create_key(session, role, name)
        made = KeyRecord.of(row)
        record(session, actor, AuditEntry("create", OBJECT_TYPE, made.id, {
            "role": made.role.value, "name": made.name}))
    return made, plaintext


def revoke_key_as(sessions: sessionmaker[Session], actor: Actor, key_id: int) -> KeyRecord:
    """Revokes the key and audits it. Raises ApiKeyNotFound, or LastAdminKey for the last live
    admin key (then nothing is revoked, nor audited). Revoking a revoked key changes nothing
    and is audited as such (`already_revoked`), so a repeated attempt stays visible."""
    with session_scope(sessions) as session:
        asked_at = dt.datetime.now(dt.UTC)
        revoked = KeyRecord.of(revoke_key(session, key_id))
        earlier = revoked.revoked_at is not None and revoked.revoked_at < asked_at
        record(session, actor, AuditEntry("revoke", OBJECT_TYPE, key_id, {
            "role": revoked.role.value, "name": revoked.name, "already_revoked": earlier}))
    return revoked
