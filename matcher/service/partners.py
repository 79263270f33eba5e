"""Partner apps: an admin registers one (its webhook, the categories it shows, optionally its
home area), reads its deliveries log, and removes it. Every change is audited.

The secret that signs its events is made here and shown once, in the answer to the
registration; the store keeps it, as it must sign every body with it.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from matcher.service.runtime import Runtime
from matcher.store import AuditEntry, InvalidRecord, record, session_scope
from matcher.store.partners import (
    Delivery,
    NewPartner,
    Partner,
    PartnerNotFound,
    create_partner,
    get_partner,
    list_partners,
    partner_deliveries,
    queue_states,
    revoke_partner,
)
from matcher.vocabulary import SYSTEM, Actor, AlertChange, Category, DeliveryStatus

__all__ = ["PartnerNotFound", "PartnerRecord", "DeliveryRecord", "register_partner",
           "browse_partners", "remove_partner", "deliveries_log", "delivery_states"]


@dataclass(frozen=True)
class HomeArea:
    lat: float
    lon: float
    radius_km: float


@dataclass(frozen=True)
class PartnerRecord:
    id: int
    name: str
    url: str
    categories: list[Category]
    home: HomeArea | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    secret: str | None = None  # only in the answer to the registration

    @classmethod
    def of(cls, row: Partner, secret: str | None = None) -> PartnerRecord:
        home = None
        if row.home_lat is not None and row.home_lon is not None and row.home_radius_km:
            home = HomeArea(row.home_lat, row.home_lon, row.home_radius_km)
        return cls(row.id, row.name, row.url, [Category(c) for c in row.categories], home,
                   row.created_at, row.revoked_at, secret)


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    event_id: str
    alert_id: int
    kind: AlertChange
    status: DeliveryStatus
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None  # while pending
    last_attempt_at: dt.datetime | None
    last_status: int | None  # the HTTP status the partner answered last
    last_error: str | None
    delivered_at: dt.datetime | None

    @classmethod
    def of(cls, row: Delivery) -> DeliveryRecord:
        pending = row.status is DeliveryStatus.PENDING
        return cls(row.id, row.event_id, row.alert_id, row.kind, row.status, row.attempts,
                   row.created_at, row.next_attempt_at if pending else None,
                   row.last_attempt_at, row.last_status, row.last_error, row.delivered_at)


def webhook_url(url: str) -> str:
    """An absolute http(s) URL with a host and no credentials (they would sit in logs)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRecord("a webhook URL is http:// or https:// with a host")
    if parts.username or parts.password:
        raise InvalidRecord("a webhook URL carries no credentials: the signature proves who "
                            "sends")
    return url


def register_partner(matcher: Runtime, name: str, url: str, categories: list[Category],
                     home: HomeArea | None, actor: Actor = SYSTEM) -> PartnerRecord:
    """A new partner with a new secret, returned this once. It hears of alerts issued, widened
    or resolved from now on."""
    secret = f"whsec_{secrets.token_urlsafe(32)}"
    with session_scope(matcher.sessions) as session:
        row = create_partner(session, NewPartner(
            name, webhook_url(url), secret, [Category(c).value for c in categories],
            None if home is None else home.lat, None if home is None else home.lon,
            None if home is None else home.radius_km), matcher.clock())
        record(session, actor, AuditEntry("create", "partner", row.id, {
            "name": name, "categories": list(row.categories), "home": home is not None}))
        return PartnerRecord.of(row, secret)


def browse_partners(matcher: Runtime) -> list[PartnerRecord]:
    with matcher.sessions() as session:
        return [PartnerRecord.of(row) for row in list_partners(session)]


def remove_partner(matcher: Runtime, partner_id: int, actor: Actor = SYSTEM) -> PartnerRecord:
    """No more events for it; what waited in its outbox is cancelled (the log keeps it)."""
    with session_scope(matcher.sessions) as session:
        row = revoke_partner(session, partner_id, matcher.clock())
        record(session, actor, AuditEntry("delete", "partner", partner_id))
        return PartnerRecord.of(row)


def deliveries_log(matcher: Runtime, partner_id: int, limit: int = 100,
                   before_id: int | None = None) -> list[DeliveryRecord]:
    """The partner's deliveries, newest first (PartnerNotFound for an unknown id)."""
    with matcher.sessions() as session:
        get_partner(session, partner_id)
        return [DeliveryRecord.of(row)
                for row in partner_deliveries(session, partner_id, limit, before_id)]


@dataclass(frozen=True)
class DeliveryState:
    """A live partner's outbox for /metrics."""

    partner_id: int
    counts: dict[str, int]  # by status
    lag_s: float  # age of its oldest undelivered event (0: none waits)
    head_attempts: int  # failed attempts of that event: the partner is failing when > 0


def delivery_states(matcher: Runtime) -> list[DeliveryState]:
    now = matcher.clock()
    with matcher.sessions() as session:
        return [DeliveryState(s.partner_id, s.counts,
                              0.0 if s.oldest_pending is None
                              else max(0.0, (now - s.oldest_pending).total_seconds()),
                              s.head_attempts) for s in queue_states(session)]
