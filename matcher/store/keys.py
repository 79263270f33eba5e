"""API keys: random, shown once, stored as a SHA-256 with a short non-secret prefix.

A key reads `mk_<prefix>_<secret>`: the prefix (12 hex chars) finds the row, the SHA-256 of the
whole key is compared in constant time. The keys carry 256 random bits, so a fast hash is
enough (no password stretching needed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from matcher.store.errors import InvalidRecord, NotFound, StoreError
from matcher.store.models import ApiKey, utcnow
from matcher.vocabulary import Role

log = logging.getLogger(__name__)

KEY_SCHEME = "mk"


class ApiKeyNotFound(NotFound):
    pass


class LastAdminKey(StoreError):
    """Revoking this key would leave no live admin key: nobody could make or revoke keys."""


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _prefix_of(plaintext: str) -> str | None:
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or len(parts[1]) != 12:
        return None
    return parts[1]


def create_key(session: Session, role: Role | str, name: str) -> tuple[ApiKey, str]:
    """A new key row (flushed, not committed) and the plaintext key, which is never stored."""
    role = Role(role)
    prefix = secrets.token_hex(6)
    plaintext = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(prefix=prefix, key_hash=hash_key(plaintext), role=role, name=name)
    session.add(key)
    session.flush()
    log.info("created %s key %d (%s)", role.value, key.id, prefix)
    return key, plaintext


def add_given_key(session: Session, plaintext: str, role: Role | str, name: str) -> ApiKey:
    """Stores a key whose plaintext was chosen outside (MATCHER_ADMIN_KEY): flushed, not
    committed. InvalidRecord unless it reads `mk_<12 hex>_<secret>`."""
    prefix = _prefix_of(plaintext)
    if prefix is None:
        raise InvalidRecord("a key reads mk_<12 hex>_<secret>")
    key = ApiKey(prefix=prefix, key_hash=hash_key(plaintext), role=Role(role), name=name)
    session.add(key)
    session.flush()
    return key


def key_by_prefix(session: Session, prefix: str) -> ApiKey | None:
    """The key, live or revoked, whose plaintext starts `mk_<prefix>_`."""
    return session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))


def has_live_admin_key(session: Session) -> bool:
    return session.scalar(select(ApiKey.id).where(
        ApiKey.role == Role.ADMIN, ApiKey.revoked_at.is_(None)).limit(1)) is not None


def verify_key(session: Session, plaintext: str) -> ApiKey | None:
    """The live key row for this plaintext; None for a wrong, malformed or revoked key."""
    prefix = _prefix_of(plaintext)
    if prefix is None:
        return None
    key = key_by_prefix(session, prefix)
    if key is None or not hmac.compare_digest(key.key_hash, hash_key(plaintext)):
        return None
    if key.revoked_at is not None:
        return None
    return key


def revoke_key(session: Session, key_id: int) -> ApiKey:
    """Marks a key revoked (idempotent: the first revocation time stays). The last live admin
    key is not revoked (LastAdminKey; the caller rolls back): make another one first.

    Two admins revoking each other's keys at once must not leave none. On PostgreSQL the live
    admin keys are locked first, so the second revocation waits and counts after the first
    commits; SQLite renders no FOR UPDATE, but its UPDATE takes the only write lock and the
    count after it reads the latest commits.
    """
    key = session.get(ApiKey, key_id)
    if key is None:
        raise ApiKeyNotFound(f"no API key {key_id}")
    if key.revoked_at is not None:
        return key
    live_admin = (ApiKey.role == Role.ADMIN) & ApiKey.revoked_at.is_(None)
    if key.role is Role.ADMIN:
        session.execute(select(ApiKey.id).where(live_admin).order_by(ApiKey.id)
                        .with_for_update()).all()
    revoked = session.scalar(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow()).returning(ApiKey.id)
        .execution_options(synchronize_session=False))
    session.refresh(key)
    if revoked is None:  # by another transaction meanwhile
        return key
    if key.role is Role.ADMIN and not session.scalar(
            select(func.count()).select_from(ApiKey).where(live_admin)):
        raise LastAdminKey(
            f"key {key_id} is the last live admin key: revoked, nobody could make or revoke "
            "keys any more. Make another admin key first (POST /v1/keys with role admin, or "
            "`matcher keys create --role admin`), then revoke this one with it")
    log.info("revoked key %d (%s)", key.id, key.prefix)
    return key


def list_keys(session: Session, include_revoked: bool = False) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query))


def note_key_used(session: Session, key_id: int, at: dt.datetime, since: dt.datetime) -> bool:
    """Sets the key's last use to `at` unless it was already noted at or after `since`; True if
    written. The condition is in the UPDATE, so servers that race write it once."""
    noted = session.scalar(
        update(ApiKey).where(ApiKey.id == key_id,
                             ApiKey.last_used_at.is_(None) | (ApiKey.last_used_at < since))
        .values(last_used_at=at).returning(ApiKey.id)
        .execution_options(synchronize_session=False))
    return noted is not None
