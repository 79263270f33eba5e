"""API keys: create, revoke, and the first admin key of a new installation."""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import re

from sqlalchemy.orm import Session, sessionmaker

from matcher.service.errors import InvalidAdminKey
from matcher.service.records import KeyRecord
from matcher.store import ApiKey, create_key, revoke_key, session_scope, verify_key
from matcher.store.keys import add_given_key, has_live_admin_key, hash_key, key_by_prefix
from matcher.vocabulary import Role

log = logging.getLogger(__name__)

_KEY_FORMAT = re.compile(r"^mk_([0-9a-f]{12})_[A-Za-z0-9_-]{32,}$")


def new_key(sessions: sessionmaker[Session], role: Role | str, name: str
            ) -> tuple[KeyRecord, str]:
    """The new key and its plaintext (shown once, never stored)."""
    with session_scope(sessions) as session:
        row, plaintext = create_key(session, role, name)
        return KeyRecord.of(row), plaintext


def revoke(sessions: sessionmaker[Session], key_id: int) -> KeyRecord:
    with session_scope(sessions) as session:
        return KeyRecord.of(revoke_key(session, key_id))


def authenticate(sessions: sessionmaker[Session], plaintext: str) -> KeyRecord | None:
    """The live key of this plaintext; None for a wrong, malformed or revoked one."""
    with sessions() as session:
        row = verify_key(session, plaintext)
        return None if row is None else KeyRecord.of(row)


def bootstrap_admin(sessions: sessionmaker[Session], given: str | None = None) -> str | None:
    """On a store with no live admin key, stores `given` (MATCHER_ADMIN_KEY) or a new random
    one. Returns the plaintext to show once when a random key was made, else None."""
    with session_scope(sessions) as session:
        live = has_live_admin_key(session)
        if given is not None:
            match = _KEY_FORMAT.match(given)
            if match is None:
                raise InvalidAdminKey("MATCHER_ADMIN_KEY must look like mk_<12 hex>_<32+ "
                                      "url-safe chars>; `matcher keys create` makes one")
            if verify_key(session, given) is not None:
                return None
            held = key_by_prefix(session, match.group(1))
            if held is not None and held.revoked_at is not None and hmac.compare_digest(
                    held.key_hash, hash_key(given)):
                raise InvalidAdminKey(_revoked(held, held.revoked_at, live))
            if held is not None:
                raise InvalidAdminKey("MATCHER_ADMIN_KEY's prefix belongs to another key")
            add_given_key(session, given, Role.ADMIN, "admin (MATCHER_ADMIN_KEY)")
            log.info("stored the admin key from MATCHER_ADMIN_KEY")
            return None
        if live:
            return None
        _, plaintext = create_key(session, Role.ADMIN, "admin (first start)")
        return plaintext


def _revoked(key: ApiKey, when: dt.datetime, live_admin: bool) -> str:
    """Why a revoked MATCHER_ADMIN_KEY stops the start, and what to do."""
    told = (f"MATCHER_ADMIN_KEY is {key.role.value} key {key.id} ({key.prefix}), revoked at "
            f"{when:%Y-%m-%d %H:%M} UTC: it opens nothing any more, and a revoked key is "
            "never stored again. ")
    if live_admin:
        return told + ("Unset MATCHER_ADMIN_KEY (the live admin keys keep working without it), "
                       "or set it to a live admin key: `matcher keys create --role admin "
                       "--name NAME` makes one")
    return told + ("No live admin key is left: unset MATCHER_ADMIN_KEY and the next start "
                   "prints a new one once, or set it to a new key (`matcher keys create --role "
                   "admin --name NAME` makes one)")
