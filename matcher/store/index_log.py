"""The index change log: every change to the faces that can be matched, in commit order, so
that every process serving the store keeps its indexes equal to it (issue 23).

A change is a row written in the transaction of the change it tells of (a case's faces added,
a case out of matching or back in, faces removed, a sighting's faces stored or purged). Rows
are numbered in the order their transactions commit: `log_change` takes a lock held until the
commit before it takes the number (PostgreSQL: a transaction-level advisory lock; SQLite has
one writer at a time), so a reader that saw number n has seen every change up to n. On
PostgreSQL the commit also wakes the processes that LISTEN on `CHANNEL`.

The log is short-lived: rows older than a day go in housekeeping; a process that fell behind
what the log keeps rebuilds its indexes from the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Engine, Index, String, delete, func, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from matcher.store.models import Base, utcnow
from matcher.store.models.base import NO_ID_REUSE, Id, one_of

CHANNEL = "matcher_index_changes"
# The advisory lock key that orders the log's numbers (any constant; "mtch" in ASCII).
_ORDER_LOCK = 0x6D746368


class ChangeKind(StrEnum):
    CASE_FACES = "case_faces"  # faces of a case stored (they match while the case is active)
    CASE_IN = "case_in"  # a case back in matching: every face of it
    CASE_OUT = "case_out"  # a case out of matching (found, closed, erased)
    CASE_FACES_GONE = "case_faces_gone"  # case faces deleted (a photo removed)
    SIGHTING_FACES = "sighting_faces"  # a sighting's fit faces stored
    SIGHTING_FACES_GONE = "sighting_faces_gone"  # sighting faces deleted (purged)
    # The store's serving model was switched by a reindex (matcher/store/serving.py), or
    # vectors of it were added for faces stored meanwhile by processes still on the old one.
    MODEL = "model"


class IndexChange(Base):
    __tablename__ = "index_changes"
    __table_args__ = (one_of("kind", ChangeKind), Index("ix_index_changes_created_at",
                                                        "created_at"), NO_ID_REUSE)

    id: Mapped[int] = mapped_column(Id, primary_key=True)  # the change number
    kind: Mapped[str] = mapped_column(String(24))
    owner_id: Mapped[int | None] = mapped_column(BigInteger)  # the case or sighting
    face_ids: Mapped[list[int]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class Change:
    seq: int
    kind: ChangeKind
    owner_id: int | None
    face_ids: list[int]
    created_at: dt.datetime


def log_change(session: Session, kind: ChangeKind, owner_id: int | None = None,
               face_ids: Sequence[int] = ()) -> None:
    """Records a change in the caller's transaction; call it last in that transaction, as
    its number's lock is held until the commit."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ORDER_LOCK})
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
    session.add(IndexChange(kind=kind.value, owner_id=owner_id,
                            face_ids=[int(face) for face in face_ids]))
    session.flush()


def changes_after(session: Session, seq: int, limit: int = 500) -> list[Change]:
    """The changes numbered above `seq`, oldest first, at most `limit`."""
    rows = session.scalars(select(IndexChange).where(IndexChange.id > seq)
                           .order_by(IndexChange.id).limit(limit))
    return [Change(row.id, ChangeKind(row.kind), row.owner_id, list(row.face_ids),
                   row.created_at) for row in rows]


def latest_change(session: Session) -> int:
    """The number of the newest change (0: none)."""
    return int(session.scalar(select(func.max(IndexChange.id))) or 0)


def oldest_change(session: Session) -> int | None:
    """The number of the oldest change the log still keeps (None: it keeps none)."""
    value = session.scalar(select(func.min(IndexChange.id)))
    return None if value is None else int(value)


def forget_changes(session: Session, before: dt.datetime) -> int:
    """Deletes the changes logged before `before`, keeping the newest (its number tells a
    reader how far the log reached, so a process that is up to date never rebuilds)."""
    newest = latest_change(session)
    return int(session.execute(delete(IndexChange).where(  # type: ignore[attr-defined]
        IndexChange.created_at < before, IndexChange.id < newest)).rowcount)


@contextmanager
def change_listener(engine: Engine) -> Iterator[Callable[[float], bool]]:
    """PostgreSQL: a connection of its own that LISTENs on CHANNEL. Yields `wait(timeout_s)`,
    True as soon as a change commits, False after the timeout."""
    import psycopg

    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"LISTEN {CHANNEL}")

        def wait(timeout_s: float) -> bool:
            return any(True for _ in connection.notifies(timeout=timeout_s, stop_after=1))

        yield wait
