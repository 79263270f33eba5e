"""The first admin key: printed once, or taken from MATCHER_ADMIN_KEY."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from matcher.config import Settings
from matcher.service import InvalidAdminKey, authenticate, bootstrap_admin, new_key, revoke
from matcher.store import Role, migrate, session_factory
from matcher.wiring import make_engine
from tests.api.test_serve import free_port
from tests.data import REPO_ROOT

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


def test_a_revoked_matcher_admin_key_says_it_was_revoked_and_what_to_do(
    tmp_path: Path
) -> None:
    """The same key, revoked, was refused as "prefix belongs to another key" (issue 19, 7)."""
    factory = sessions(tmp_path)
    assert bootstrap_admin(factory, GIVEN) is None
    given = authenticate(factory, GIVEN)
    assert given is not None
    other, _ = new_key(factory, Role.ADMIN, "desk 2")
    revoke(factory, given.id)
    with pytest.raises(InvalidAdminKey) as refused:
        bootstrap_admin(factory, GIVEN)
    told = str(refused.value)
    assert "revoked at" in told and f"key {given.id}" in told and "another key" not in told
    assert "Unset MATCHER_ADMIN_KEY" in told and "matcher keys create --role admin" in told
    # Another key with the same prefix is still another key.
    with pytest.raises(InvalidAdminKey, match="prefix belongs to another key"):
        bootstrap_admin(factory, GIVEN[:-1] + "t")


def test_matcher_serve_with_a_revoked_admin_key_stops_saying_so(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    factory = sessions(data_dir)
    bootstrap_admin(factory, GIVEN)
    given = authenticate(factory, GIVEN)
    assert given is not None
    new_key(factory, Role.ADMIN, "desk 2")
    revoke(factory, given.id)
    started = subprocess.run(
        [sys.executable, "-m", "matcher", "serve", "--data-dir", str(data_dir), "--port",
         str(free_port())], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "MATCHER_ADMIN_KEY": GIVEN, "MATCHER_THREADS": "1"})
    assert started.returncode == 2, started.stderr
    assert "revoked at" in started.stderr and "Unset MATCHER_ADMIN_KEY" in started.stderr
    assert GIVEN not in started.stderr + started.stdout  # the secret is never echoed
