"""Partners and the durable outbox of their webhook deliveries (issue 22, item 4).

A partner (a news, map or mobility app) is registered with a webhook URL, the categories it
shows and optionally a home area. Each alert event for it is a row of `partner_deliveries`,
committed in the same transaction as the change it tells of: the outbox. Rows are sent in id
order per partner, retried until acknowledged or given up, and kept as the deliveries log.

A row is claimed before it is sent (`lease_until`): another process serving the same store
skips it until the lease runs out, so a row is in flight once at a time, and a process killed
mid-send leaves a lease that simply expires. Like the other store modules, functions flush
but never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from matcher.store.alerts import Alert
from matcher.store.errors import InvalidRecord, NotFound
from matcher.store.models import Base
from matcher.store.models.base import NO_ID_REUSE, Id, enum_type, one_of, position_checks
from matcher.vocabulary import AlertChange, AlertStatus, DeliveryStatus


class PartnerNotFound(NotFound):
    pass


class Partner(Base):
    """A partner app that receives alert events at its webhook."""

    __tablename__ = "partners"
    __table_args__ = (
        *position_checks("home_"),
        CheckConstraint("(home_lat IS NULL) = (home_radius_km IS NULL)", name="home_area"),
        CheckConstraint("home_radius_km IS NULL OR home_radius_km > 0", name="home_radius_km"),
        NO_ID_REUSE,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2000))
    # The HMAC key of its signatures: shown once at registration, kept to sign every body.
    secret: Mapped[str] = mapped_column(String(100))
    categories: Mapped[list[str]] = mapped_column(JSON)
    home_lat: Mapped[float | None] = mapped_column(Float)
    home_lon: Mapped[float | None] = mapped_column(Float)
    home_radius_km: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class Delivery(Base):
    """One event for one partner: the outbox row until acknowledged, then the log's."""

    __tablename__ = "partner_deliveries"
    __table_args__ = (
        one_of("kind", AlertChange),
        one_of("status", DeliveryStatus),
        # One row per event of a partner: whoever enqueues it again (a widening found by two
        # processes) adds nothing.
        UniqueConstraint("partner_id", "event_key", name="uq_partner_deliveries_event_key"),
        UniqueConstraint("event_id", name="uq_partner_deliveries_event_id"),
        # The head of each partner's queue, and its log newest first.
        Index("ix_partner_deliveries_status_partner_id_id", "status", "partner_id", "id"),
        Index("ix_partner_deliveries_partner_id_id", "partner_id", "id"),
        NO_ID_REUSE,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    partner_id: Mapped[int] = mapped_column(Id, ForeignKey("partners.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(40))  # sent with it: the partner's dedup key
    event_key: Mapped[str] = mapped_column(String(64))  # 12:notice, 12:widened:2, 12:resolved
    alert_id: Mapped[int] = mapped_column(Id)
    kind: Mapped[AlertChange] = mapped_column(enum_type(AlertChange))
    body: Mapped[str] = mapped_column(Text)  # the JSON sent, fixed when the event happened
    status: Mapped[DeliveryStatus] = mapped_column(enum_type(DeliveryStatus))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column()
    next_attempt_at: Mapped[dt.datetime] = mapped_column()
    lease_until: Mapped[dt.datetime | None] = mapped_column()
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column()
    last_status: Mapped[int | None] = mapped_column(Integer)  # the HTTP status answered
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[dt.datetime | None] = mapped_column()


@dataclass(frozen=True)
class NewPartner:
    name: str
    url: str
    secret: str
    categories: Sequence[str]
    home_lat: float | None = None
    home_lon: float | None = None
    home_radius_km: float | None = None


def create_partner(session: Session, new: NewPartner, at: dt.datetime) -> Partner:
    home = (new.home_lat, new.home_lon, new.home_radius_km)
    if any(v is None for v in home) and any(v is not None for v in home):
        raise InvalidRecord("a home area is home_lat, home_lon and home_radius_km together")
    partner = Partner(name=new.name, url=new.url, secret=new.secret,
                      categories=list(dict.fromkeys(new.categories)), home_lat=new.home_lat,
                      home_lon=new.home_lon, home_radius_km=new.home_radius_km, created_at=at)
    session.add(partner)
    session.flush()
    return partner


def get_partner(session: Session, partner_id: int) -> Partner:
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise PartnerNotFound(f"no partner {partner_id}")
    return partner


def live_partners(session: Session) -> list[Partner]:
    return list(session.scalars(select(Partner).where(Partner.revoked_at.is_(None))
                                .order_by(Partner.id)))


def list_partners(session: Session) -> list[Partner]:
    return list(session.scalars(select(Partner).order_by(Partner.id)))


def revoke_partner(session: Session, partner_id: int, at: dt.datetime) -> Partner:
    """No more events for it: what waits in its queue is cancelled."""
    partner = get_partner(session, partner_id)
    if partner.revoked_at is None:
        partner.revoked_at = at
        session.execute(update(Delivery).where(
            Delivery.partner_id == partner_id, Delivery.status == DeliveryStatus.PENDING)
            .values(status=DeliveryStatus.CANCELLED, lease_until=None))
    session.flush()
    return partner


@dataclass(frozen=True)
class NewDelivery:
    partner_id: int
    event_id: str
    event_key: str
    alert_id: int
    kind: AlertChange
    body: str


def enqueue(session: Session, deliveries: Sequence[NewDelivery], at: dt.datetime) -> None:
    """Adds the deliveries to the outbox, due now; one whose (partner, event key) is there
    already is left as it is."""
    if not deliveries:
        return
    rows = [{"partner_id": d.partner_id, "event_id": d.event_id, "event_key": d.event_key,
             "alert_id": d.alert_id, "kind": AlertChange(d.kind).value, "body": d.body,
             "status": DeliveryStatus.PENDING.value, "attempts": 0, "created_at": at,
             "next_attempt_at": at} for d in deliveries]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for row in rows:  # in order: their ids are the order a partner receives them in
        session.execute(insert(Delivery).values(**row).on_conflict_do_nothing(
            index_elements=["partner_id", "event_key"]))
    session.flush()


def told(session: Session, alert_id: int) -> set[int]:
    """The partners an alert's events went (or go) to."""
    return {int(p) for p in session.scalars(select(Delivery.partner_id).where(
        Delivery.alert_id == alert_id).distinct())}


def queue_heads(session: Session, now: dt.datetime) -> list[Delivery]:
    """Each live partner's oldest pending delivery, if it is due and not leased: what may be
    sent now, one per partner (a partner's events go out in order, one at a time)."""
    heads = (select(func.min(Delivery.id)).where(Delivery.status == DeliveryStatus.PENDING)
             .group_by(Delivery.partner_id))
    rows = session.scalars(select(Delivery).where(Delivery.id.in_(heads)).order_by(Delivery.id))
    return [row for row in rows if row.next_attempt_at <= now
            and (row.lease_until is None or row.lease_until < now)]


def claim(session: Session, delivery_id: int, now: dt.datetime, until: dt.datetime) -> bool:
    """Leases a pending delivery until `until`, unless another holds it; True if ours."""
    taken = session.execute(update(Delivery).where(
        Delivery.id == delivery_id, Delivery.status == DeliveryStatus.PENDING,
        (Delivery.lease_until.is_(None)) | (Delivery.lease_until < now),
    ).values(lease_until=until))
    return bool(getattr(taken, "rowcount", 0) == 1)


def record_attempt(session: Session, delivery_id: int, at: dt.datetime, http_status: int | None,
                   error: str | None, next_at: dt.datetime | None) -> None:
    """One attempt's outcome: delivered (`error` None), or tried again at `next_at`, or given
    up (`next_at` None)."""
    if error is None:
        values: dict[str, object] = {"status": DeliveryStatus.DELIVERED, "delivered_at": at}
    elif next_at is None:
        values = {"status": DeliveryStatus.FAILED}
    else:
        values = {"next_attempt_at": next_at}
    session.execute(update(Delivery).where(
        Delivery.id == delivery_id, Delivery.status == DeliveryStatus.PENDING).values(
        attempts=Delivery.attempts + 1, last_attempt_at=at, last_status=http_status,
        last_error=None if error is None else error[:500], lease_until=None, **values))


def partner_deliveries(session: Session, partner_id: int, limit: int = 100,
                       before_id: int | None = None) -> list[Delivery]:
    """The partner's deliveries, newest first; page with `before_id`."""
    query = select(Delivery).where(Delivery.partner_id == partner_id)
    if before_id is not None:
        query = query.where(Delivery.id < before_id)
    return list(session.scalars(query.order_by(Delivery.id.desc()).limit(limit)))


@dataclass(frozen=True)
class QueueState:
    """One partner's outbox at a glance: for /metrics."""

    partner_id: int
    counts: dict[str, int]  # by delivery status
    oldest_pending: dt.datetime | None
    head_attempts: int  # failed attempts of the oldest pending delivery


def queue_states(session: Session) -> list[QueueState]:
    counts: dict[int, dict[str, int]] = {}
    for partner_id, status, count in session.execute(
            select(Delivery.partner_id, Delivery.status, func.count())
            .group_by(Delivery.partner_id, Delivery.status)):
        counts.setdefault(int(partner_id), {})[str(status)] = int(count)
    heads = (select(func.min(Delivery.id)).where(Delivery.status == DeliveryStatus.PENDING)
             .group_by(Delivery.partner_id))
    oldest = {int(row.partner_id): row for row in session.execute(
        select(Delivery.partner_id, Delivery.created_at, Delivery.attempts)
        .where(Delivery.id.in_(heads)))}
    states = []
    for partner in live_partners(session):
        head = oldest.get(partner.id)
        states.append(QueueState(partner.id, counts.get(partner.id, {}),
                                 None if head is None else head.created_at,
                                 0 if head is None else int(head.attempts)))
    return states


# --- alerts whose area grows: the widening events ---------------------------------------------


def due_widenings(session: Session, now: dt.datetime, limit: int = 500) -> list[Alert]:
    """Active alerts whose area grew at a step not told to the partners yet."""
    return list(session.scalars(select(Alert).where(
        Alert.status == AlertStatus.ACTIVE, Alert.next_step_at.is_not(None),
        Alert.next_step_at <= now).order_by(Alert.next_step_at).limit(limit)))

