"""Alerts: the tables and the functions over them (issue, resolve, read what changed).

An alert is issued for an active case at its last-seen point and moment, and resolved once
(found, or cancelled); a new alert is a new row. Every change takes the next number of one
counter (`alert_sequence`) in its own transaction: the row lock (PostgreSQL) or the write lock
(SQLite) held until the commit makes the numbers commit in their order, so a reader that saw
number n has seen every change up to n, and "what changed since n" misses nothing. The feed
(matcher/service/alert_feed.py) reads the rows changed since the number it last saw.

`case_id` has no foreign key: an alert outlives its case's erasure (without its place), so apps
are still told to take it down, as the audit trail outlives what it names.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    Index,
    Integer,
    String,
    UniqueConstraint,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from matcher.store.errors import InvalidRecord
from matcher.store.models import Base, Case, CasePhoto
from matcher.store.models.base import NO_ID_REUSE, Id, enum_type, one_of, position_checks
from matcher.vocabulary import (
    PUBLIC_CASE_FIELDS,
    AlertOutcome,
    AlertStatus,
    CaseStatus,
    Category,
)

# [[from hour, radius km or None for the whole territory], ...], as issued.
Steps = list[list[float | None]]


class Alert(Base):
    """One alert of a case, from its issue to its resolution."""

    __tablename__ = "alerts"
    __table_args__ = (
        one_of("category", Category),
        one_of("status", AlertStatus),
        one_of("outcome", AlertOutcome),
        CheckConstraint("(status = 'active') = (outcome IS NULL)", name="outcome_when_resolved"),
        CheckConstraint("(status = 'active') = (resolved_at IS NULL)", name="resolved_at"),
        CheckConstraint("(status = 'active') = (resolved_seq IS NULL)", name="resolved_seq"),
        # Set while active, so the unique constraint allows one active alert per case (NULLs
        # never collide, on either database).
        CheckConstraint("(status = 'active') = (open_case_id IS NOT NULL) AND "
                        "(open_case_id IS NULL OR open_case_id = case_id)", name="open_case_id"),
        *position_checks(),
        UniqueConstraint("open_case_id", name="uq_alerts_open_case_id"),
        Index("ix_alerts_case_id", "case_id"),
        Index("ix_alerts_changed_seq", "changed_seq"),
        Index("ix_alerts_status_next_step_at", "status", "next_step_at"),
        NO_ID_REUSE,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(Id)
    open_case_id: Mapped[int | None] = mapped_column(Id)
    category: Mapped[Category] = mapped_column(enum_type(Category))
    lat: Mapped[float | None] = mapped_column(Float)  # the last-seen point; None once erased
    lon: Mapped[float | None] = mapped_column(Float)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column()
    schedule: Mapped[Steps] = mapped_column(JSON)  # the area by hours, as issued
    status: Mapped[AlertStatus] = mapped_column(enum_type(AlertStatus))
    outcome: Mapped[AlertOutcome | None] = mapped_column(enum_type(AlertOutcome))
    issued_at: Mapped[dt.datetime] = mapped_column()
    issued_by: Mapped[str] = mapped_column(String(200))  # the key's name
    resolved_at: Mapped[dt.datetime | None] = mapped_column()
    issued_seq: Mapped[int] = mapped_column(BigInteger)
    resolved_seq: Mapped[int | None] = mapped_column(BigInteger)
    # Its latest edit of what apps show (the case's public fields or photos), None: none.
    updated_seq: Mapped[int | None] = mapped_column(BigInteger)
    changed_seq: Mapped[int] = mapped_column(BigInteger)  # the last of the three
    # When its area next grows, while partners have not been told of that step yet (revision
    # 0015); None once it covers all it ever will, or is resolved.
    next_step_at: Mapped[dt.datetime | None] = mapped_column()


class AlertSequence(Base):
    """The one counter every alert change takes its number from (one row, id 1)."""

    __tablename__ = "alert_sequence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


@dataclass(frozen=True)
class NewAlert:
    case_id: int
    category: Category
    lat: float
    lon: float
    last_seen_at: dt.datetime
    schedule: Sequence[tuple[float, float | None]]
    issued_at: dt.datetime
    issued_by: str


@dataclass(frozen=True)
class AlertRow:
    """What the feed keeps of an alert (read without the ORM: thousands at a time)."""

    id: int
    case_id: int
    category: Category
    lat: float | None
    lon: float | None
    schedule: Steps
    status: AlertStatus
    outcome: AlertOutcome | None
    issued_at: dt.datetime
    resolved_at: dt.datetime | None
    issued_seq: int
    resolved_seq: int | None
    updated_seq: int | None
    changed_seq: int


def next_seq(session: Session) -> int:
    """The next change number, held (locked) until the caller's transaction ends: take it
    before reading what the change depends on, so concurrent changes queue behind it."""
    value = session.scalar(update(AlertSequence).where(AlertSequence.id == 1)
                           .values(value=AlertSequence.value + 1)
                           .returning(AlertSequence.value))
    if value is None:  # the migration inserts the row; a store built from the models may not
        session.execute(insert(AlertSequence).values(id=1, value=1))
        value = 1
    return int(value)


def current_seq(session: Session) -> int:
    """The number of the latest committed change (0: none yet)."""
    return int(session.scalar(select(AlertSequence.value).where(AlertSequence.id == 1)) or 0)


def open_alert(session: Session, case_id: int) -> Alert | None:
    """The case's active alert, if it has one."""
    return session.scalar(select(Alert).where(Alert.open_case_id == case_id))


def latest_alert(session: Session, case_id: int) -> Alert | None:
    """The case's newest alert, active or not."""
    return session.scalar(select(Alert).where(Alert.case_id == case_id)
                          .order_by(Alert.id.desc()).limit(1))


def has_shown_alert(session: Session, case_id: int, resolved_after: dt.datetime) -> bool:
    """Whether the case has an alert in the feed: active, or resolved after `resolved_after`."""
    return session.scalar(select(Alert.id).where(
        Alert.case_id == case_id,
        (Alert.status == AlertStatus.ACTIVE) | (Alert.resolved_at > resolved_after)).limit(1)
    ) is not None


def insert_alert(session: Session, new: NewAlert, seq: int) -> Alert:
    """A new active alert whose change number is `seq` (from `next_seq`, taken first)."""
    if new.issued_at.tzinfo is None or new.last_seen_at.tzinfo is None:
        raise InvalidRecord("alert times must be timezone-aware")
    alert = Alert(
        case_id=new.case_id, open_case_id=new.case_id, category=Category(new.category),
        lat=new.lat, lon=new.lon, last_seen_at=new.last_seen_at,
        schedule=[[float(hour), None if km is None else float(km)] for hour, km in new.schedule],
        status=AlertStatus.ACTIVE, outcome=None, issued_at=new.issued_at,
        issued_by=new.issued_by, resolved_at=None, issued_seq=seq, resolved_seq=None,
        changed_seq=seq, next_step_at=step_after(new.schedule, new.issued_at, new.issued_at))
    session.add(alert)
    session.flush()
    return alert


def resolve_alert(session: Session, alert: Alert, outcome: AlertOutcome, at: dt.datetime,
                  seq: int) -> Alert:
    """Marks an active alert resolved, with change number `seq` (from `next_seq`)."""
    if alert.status is not AlertStatus.ACTIVE:
        raise InvalidRecord(f"alert {alert.id} is resolved already")
    alert.status, alert.outcome, alert.resolved_at = AlertStatus.RESOLVED, outcome, at
    alert.next_step_at = None
    alert.open_case_id, alert.resolved_seq, alert.changed_seq = None, seq, seq
    session.flush()
    return alert


def step_after(schedule: Sequence[Sequence[float | None]], issued_at: dt.datetime,
               after: dt.datetime) -> dt.datetime | None:
    """When the area of an alert issued at `issued_at` next grows after `after` (None: never
    again)."""
    for hour, _ in schedule:
        start = issued_at + dt.timedelta(hours=float(hour or 0))
        if start > after:
            return start
    return None


def told_step(session: Session, alert: Alert, now: dt.datetime) -> None:
    """The partners were told of the alert's area as of `now`: the next step to tell is the
    one after it."""
    alert.next_step_at = step_after(alert.schedule, alert.issued_at, now)
    session.flush()


def mark_updated(session: Session, alert: Alert, seq: int) -> None:
    """What the active alert shows changed, with change number `seq` (from `next_seq`)."""
    if alert.status is not AlertStatus.ACTIVE:
        raise InvalidRecord(f"alert {alert.id} is resolved: it shows nothing more")
    alert.updated_seq, alert.changed_seq = seq, seq
    session.flush()


def forget_place(session: Session, case_id: int, seq: int) -> None:
    """An erased case's alerts keep no point nor moment (the place went with the case); `seq`
    (from `next_seq`) marks them changed, so every reader drops the place too."""
    session.execute(update(Alert).where(Alert.case_id == case_id)
                    .values(lat=None, lon=None, last_seen_at=None, changed_seq=seq))


_ROW_COLUMNS = (Alert.id, Alert.case_id, Alert.category, Alert.lat, Alert.lon, Alert.schedule,
                Alert.status, Alert.outcome, Alert.issued_at, Alert.resolved_at,
                Alert.issued_seq, Alert.resolved_seq, Alert.updated_seq, Alert.changed_seq)


def alerts_changed_since(session: Session, seq: int,
                         resolved_after: dt.datetime | None = None) -> list[AlertRow]:
    """Alerts whose last change has a number above `seq`; with `resolved_after`, only those
    active or resolved after it (a first read leaves out the long-resolved)."""
    query = select(*_ROW_COLUMNS).where(Alert.changed_seq > seq).order_by(Alert.changed_seq)
    if resolved_after is not None:
        query = query.where((Alert.status == AlertStatus.ACTIVE)
                            | (Alert.resolved_at > resolved_after))
    return [AlertRow(**row._mapping) for row in session.execute(query)]


@dataclass(frozen=True)
class PublicCase:
    """What a case shows in the feed: the fields its manager made public, and its photos when
    made public too (only while the case is active)."""

    fields: dict[str, Any]
    photo_ids: list[int]


def public_cases(session: Session, case_ids: Iterable[int]) -> dict[int, PublicCase]:
    """The public part of each of these cases that still exists, by id. Core rows of the
    columns a case may publish, not ORM objects: a feed page reads a hundred at a time."""
    ids = sorted(set(case_ids))
    if not ids:
        return {}
    columns = [getattr(Case, name) for name in sorted(PUBLIC_CASE_FIELDS - {"photos"})]
    rows = session.execute(select(Case.id, Case.public_fields, *columns)
                           .where(Case.id.in_(ids))).mappings().all()
    photos: dict[int, list[int]] = {}
    for case_id, photo_id in session.execute(
            select(CasePhoto.case_id, CasePhoto.id).where(CasePhoto.case_id.in_(ids))
            .order_by(CasePhoto.id)):
        photos.setdefault(case_id, []).append(photo_id)
    return {row["id"]: _public(row, photos.get(row["id"], [])) for row in rows}


def _public(row: Any, photo_ids: list[int]) -> PublicCase:
    fields: dict[str, Any] = {}
    for name in row["public_fields"]:
        if name == "photos":
            continue
        value = row[name]
        fields[name] = value.isoformat() if isinstance(value, dt.date) else (
            value.value if hasattr(value, "value") else value)
    shown = "photos" in row["public_fields"] and row["status"] is CaseStatus.ACTIVE
    return PublicCase(fields, photo_ids if shown else [])
