from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from matcher.store import ApiKeyNotFound, Role, create_key, list_keys, revoke_key, verify_key


def test_a_key_is_shown_once_and_stored_only_as_a_hash(session: Session, engine: Engine) -> None:
    key, plaintext = create_key(session, Role.INVESTIGATOR, "desk 4")
    session.commit()
    assert plaintext.startswith(f"mk_{key.prefix}_") and len(plaintext) > 50
    assert key.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    # The secret is nowhere in the database, in any column of any row.
    with engine.connect() as connection:
        for row in connection.execute(text("SELECT * FROM api_keys")):
            assert all(plaintext not in str(value) for value in row)
            assert all(plaintext.split("_", 2)[2] not in str(value) for value in row)
    found = verify_key(session, plaintext)
    assert found is not None and found.id == key.id
    assert found.role is Role.INVESTIGATOR and found.name == "desk 4" and found.revoked_at is None


def test_wrong_malformed_and_revoked_keys_are_refused(session: Session) -> None:
    key, plaintext = create_key(session, "tip_app", "tips")
    other, _ = create_key(session, "admin", "root")
    session.commit()
    scheme, prefix, secret = plaintext.split("_", 2)
    flipped = secret[:-1] + ("y" if secret.endswith("x") else "x")
    assert verify_key(session, f"{scheme}_{prefix}_{flipped}") is None
    assert verify_key(session, f"{scheme}_{other.prefix}_{secret}") is None
    assert verify_key(session, "") is None
    assert verify_key(session, "mk_nothing") is None
    assert verify_key(session, plaintext + "x") is None
    assert verify_key(session, "mk_" + prefix) is None
    assert verify_key(session, plaintext) is not None

    revoked = revoke_key(session, key.id)
    session.commit()
    first = revoked.revoked_at
    assert first is not None
    assert verify_key(session, plaintext) is None
    assert revoke_key(session, key.id).revoked_at == first  # idempotent
    assert [k.id for k in list_keys(session)] == [other.id]
    assert len(list_keys(session, include_revoked=True)) == 2
    with pytest.raises(ApiKeyNotFound):
        revoke_key(session, 10_000)


def test_unknown_roles_are_refused(session: Session) -> None:
    with pytest.raises(ValueError):
        create_key(session, "superuser", "nope")
