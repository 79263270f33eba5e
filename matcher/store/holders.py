"""The rows of `store_holders`: which processes hold the store (matcher/service/holders.py
decides who may, and when a row is stale).

`locked_holders` begins the transaction that decides a claim and locks the table for it, so two
claims are decided one after the other: SQLite has one writer at a time (a write statement
takes its lock), PostgreSQL takes a table lock that conflicts with itself. The caller commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from matcher.store.models import StoreHolder


@dataclass(frozen=True)
class Holder:
    id: str
    kind: str
    host: str
    pid: int
    started_at: dt.datetime
    beat_at: dt.datetime


def locked_holders(session: Session) -> list[Holder]:
    """Every holder, with the table locked against other claims until the transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE store_holders IN SHARE ROW EXCLUSIVE MODE"))
    else:  # SQLite: a write statement begins the transaction and takes the write lock
        session.execute(text("UPDATE store_holders SET pid = pid WHERE 0"))
    return [_holder(row) for row in session.scalars(select(StoreHolder).order_by(
        StoreHolder.started_at))]


def holders(session: Session) -> list[Holder]:
    """Every holder, unlocked: for a look before the claim that decides."""
    return [_holder(row) for row in session.scalars(select(StoreHolder).order_by(
        StoreHolder.started_at))]


def add_holder(session: Session, holder: Holder) -> None:
    session.add(StoreHolder(id=holder.id, kind=holder.kind, host=holder.host, pid=holder.pid,
                            started_at=holder.started_at, beat_at=holder.beat_at))


def remove_holders(session: Session, ids: Sequence[str]) -> int:
    if not ids:
        return 0
    return int(session.execute(  # type: ignore[attr-defined]
        delete(StoreHolder).where(StoreHolder.id.in_(list(ids)))).rowcount)


def renew_holder(session: Session, holder_id: str, now: dt.datetime) -> bool:
    """Moves the heartbeat on; False when the row is gone (another claim found it stale)."""
    return bool(session.execute(  # type: ignore[attr-defined]
        update(StoreHolder).where(StoreHolder.id == holder_id).values(beat_at=now)).rowcount)


def _holder(row: StoreHolder) -> Holder:
    return Holder(row.id, row.kind, row.host, row.pid, row.started_at, row.beat_at)
