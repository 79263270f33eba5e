"""The first admin key: printed once, or taken from MATCHER_ADMIN_KEY."""

from __future__ import annotations

from pathlib import Path

import pytest

from matcher.config import Settings
from matcher.service import InvalidAdminKey, authenticate, bootstrap_admin
from matcher.store import Role, make_engine, migrate, session_factory

GIVEN = "mk_0123456789ab_" + "s" * 40


def sessions(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(Settings(data_dir=tmp_path))
    migrate(engine)
    return session_factory(engine)


def test_a_first_start_makes_one_admin_key_and_later_starts_none(tmp_path: Path) -> None:
    factory = sessions(tmp_path)
    key = bootstrap_admin(factory)
    assert key is not None
    found = authenticate(factory, key)
    assert found is not None and found.role is Role.ADMIN
    assert bootstrap_admin(factory) is None


def test_matcher_admin_key_is_stored_once_and_works(tmp_path: Path) -> None:
    factory = sessions(tmp_path)
    assert bootstrap_admin(factory, GIVEN) is None
    assert bootstrap_admin(factory, GIVEN) is None  # idempotent across restarts
    found = authenticate(factory, GIVEN)
    assert found is not None and found.role is Role.ADMIN


@pytest.mark.parametrize("bad", ["admin", "mk_short_" + "s" * 40, "mk_0123456789ab_short"])
def test_a_malformed_matcher_admin_key_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidAdminKey):
        bootstrap_admin(sessions(tmp_path), bad)
