"""A key's last use is noted at most once a minute: a burst of requests writes the store once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from matcher.config import Settings
from matcher.service import new_key
from matcher.service.key_admin import key_list
from matcher.service.key_use import USE_RESOLUTION, authenticate_and_note
from matcher.store import Role, migrate, session_factory
from matcher.wiring import make_engine

T0 = dt.datetime(2026, 12, 15, 9, 0, tzinfo=dt.UTC)


def _sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(Settings(data_dir=tmp_path))
    migrate(engine)
    return session_factory(engine)


def test_last_use_is_noted_once_a_minute_and_wrong_keys_note_nothing(tmp_path: Path) -> None:
    sessions = _sessions(tmp_path)
    row, plaintext = new_key(sessions, Role.TIP_APP, "tips")
    updates: list[str] = []
    engine = sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute",
                 lambda *args: updates.append(args[2]) if args[2].startswith("UPDATE") else None)

    assert authenticate_and_note(sessions, plaintext + "x", T0) is None
    first = authenticate_and_note(sessions, plaintext, T0)
    assert first is not None and first.last_used_at == T0
    for seconds in (1, 30, 59):
        again = authenticate_and_note(sessions, plaintext, T0 + dt.timedelta(seconds=seconds))
        assert again is not None and again.last_used_at == T0
    assert len(updates) == 1  # the burst wrote once
    later = T0 + USE_RESOLUTION + dt.timedelta(seconds=1)
    assert authenticate_and_note(sessions, plaintext, later) is not None
    assert len(updates) == 2
    listed = {key.id: key for key in key_list(sessions)}
    assert listed[row.id].last_used_at == later
