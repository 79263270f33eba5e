from __future__ import annotations

import hashlib
import threading

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from matcher.store import (
    ApiKeyNotFound,
    LastAdminKey,
    Role,
    create_key,
    list_keys,
    revoke_key,
    session_scope,
    verify_key,
)


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


def test_the_last_live_admin_key_is_not_revoked(
    factory: sessionmaker[Session]
) -> None:
    """Revoked, nobody could make or revoke keys any more (issue 19, defect 7)."""
    with session_scope(factory) as session:
        first, _ = create_key(session, Role.ADMIN, "root")
        tips, _ = create_key(session, Role.TIP_APP, "tips")
    with pytest.raises(LastAdminKey, match="last live admin key"), session_scope(
            factory) as session:
        revoke_key(session, first.id)
    with session_scope(factory) as session:
        assert [k.id for k in list_keys(session)] == [first.id, tips.id]  # rolled back
        revoke_key(session, tips.id)  # any other key goes
        second, _ = create_key(session, Role.ADMIN, "root 2")
    with session_scope(factory) as session:
        assert revoke_key(session, first.id).revoked_at is not None
    with pytest.raises(LastAdminKey), session_scope(factory) as session:
        revoke_key(session, second.id)
    with session_scope(factory) as session:
        assert revoke_key(session, first.id).revoked_at is not None  # idempotent still
        assert [k.id for k in list_keys(session)] == [second.id]


def test_two_admins_revoking_each_other_at_once_leave_one(
    factory: sessionmaker[Session]
) -> None:
    def revoke(key_id: int, start: threading.Barrier, outcomes: list[str]) -> None:
        start.wait()
        try:
            with session_scope(factory) as session:
                revoke_key(session, key_id)
            outcomes.append("revoked")
        except LastAdminKey:
            outcomes.append("refused")

    for _ in range(5):
        with session_scope(factory) as session:  # the pair: the only live admin keys
            pair = [create_key(session, Role.ADMIN, f"admin {i}")[0].id for i in range(2)]
            for key in list_keys(session):
                if key.id not in pair:
                    revoke_key(session, key.id)
        outcomes: list[str] = []
        start = threading.Barrier(2)
        threads = [threading.Thread(target=revoke, args=(key_id, start, outcomes))
                   for key_id in pair]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["refused", "revoked"]
        with factory() as session:
            assert len([k for k in list_keys(session) if k.id in pair]) == 1
