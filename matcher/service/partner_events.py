"""Which partner hears of which alert event, and what it hears: the outbox rows, written in
the transaction of the change they tell of (matcher/store/partners.py).

A partner is told of an alert of a category it shows once the alert's area reaches its home
area (a partner without one covers the whole territory): `issued` when it does from the start,
else `widened` when it grows to; a partner without a home area is also told of each later
step (`widened`), as its users everywhere see the area grow. Every partner told of an alert is
told when what the alert shows changes (`updated`: the case's public fields or photos) and
when it is `resolved`. The body is fixed when the event happens and carries the alert as
the feed shows it, with its area; the event id is the partner's key to drop a repeat.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from matcher.service.alert_areas import Schedule, distance_km
from matcher.store.alerts import Alert, public_cases
from matcher.store.partners import NewDelivery, Partner, enqueue, live_partners, told
from matcher.vocabulary import AlertChange, AlertStatus

# The event keys (one row per partner and key): "<alert id>:notice", a partner's first event of
# the alert (issued, or widened into its area), "<alert id>:widened:<step>",
# "<alert id>:updated:<change number>", "<alert id>:resolved".
NOTICE = "notice"


def step_of(alert: Alert, at: dt.datetime) -> tuple[int, float]:
    """The index of the alert's schedule step at `at` (its resolution, once resolved) and that
    step's radius (inf: the whole territory)."""
    schedule = Schedule.of(alert.schedule)
    until = min(at, alert.resolved_at) if alert.resolved_at is not None else at
    hours = (until - alert.issued_at).total_seconds() / 3600
    index = sum(1 for start, _ in schedule.steps if start <= max(hours, 0.0)) - 1
    return index, schedule.radius_km(hours)


def reaches(partner: Partner, alert: Alert, radius_km: float) -> bool:
    """Whether an area of that radius around the alert's point meets the partner's home."""
    if alert.category.value not in partner.categories:
        return False
    if partner.home_lat is None or partner.home_lon is None or partner.home_radius_km is None:
        return True
    if math.isinf(radius_km):
        return True
    if alert.lat is None or alert.lon is None:
        return False
    gap = distance_km(alert.lat, alert.lon, partner.home_lat, partner.home_lon)
    return gap <= radius_km + partner.home_radius_km


def tell_issued(session: Session, alert: Alert, at: dt.datetime) -> int:
    """Outbox rows for a new alert; returns how many."""
    _, radius = step_of(alert, at)
    partners = [p for p in live_partners(session) if reaches(p, alert, radius)]
    return _enqueue(session, alert, AlertChange.ISSUED, radius, at,
                    [(p, f"{alert.id}:{NOTICE}") for p in partners])


def tell_widened(session: Session, alert: Alert, at: dt.datetime) -> int:
    """Outbox rows for an alert's area as it is at `at`: a first notice for the partners it
    now reaches, a step for those without a home area told already; returns how many."""
    step, radius = step_of(alert, at)
    already = told(session, alert.id)
    chosen: list[tuple[Partner, str]] = []
    for partner in live_partners(session):
        if not reaches(partner, alert, radius):
            continue
        if partner.id not in already:
            chosen.append((partner, f"{alert.id}:{NOTICE}"))
        elif partner.home_lat is None:
            chosen.append((partner, f"{alert.id}:widened:{step}"))
    return _enqueue(session, alert, AlertChange.WIDENED, radius, at, chosen)


def tell_updated(session: Session, alert: Alert, at: dt.datetime) -> int:
    """Outbox rows telling every partner told of the alert what it shows now."""
    return _tell_those_told(session, alert, AlertChange.UPDATED, at,
                            f"{alert.id}:updated:{alert.updated_seq}")


def tell_resolved(session: Session, alert: Alert, at: dt.datetime) -> int:
    """Outbox rows telling every partner told of the alert that it is resolved."""
    return _tell_those_told(session, alert, AlertChange.RESOLVED, at, f"{alert.id}:resolved")


def _tell_those_told(session: Session, alert: Alert, kind: AlertChange, at: dt.datetime,
                     key: str) -> int:
    already = told(session, alert.id)
    partners = [p for p in live_partners(session) if p.id in already]
    _, radius = step_of(alert, at)
    return _enqueue(session, alert, kind, radius, at, [(p, key) for p in partners])


def _enqueue(session: Session, alert: Alert, kind: AlertChange, radius: float,
             at: dt.datetime, chosen: Sequence[tuple[Partner, str]]) -> int:
    if not chosen:
        return 0
    public = public_cases(session, [alert.case_id]).get(alert.case_id)
    rows = []
    for partner, key in chosen:
        event_id = f"evt_{uuid.uuid4().hex}"
        body = event_body(event_id, kind, alert, radius, at,
                          {} if public is None else public.fields,
                          [] if public is None or alert.status is not AlertStatus.ACTIVE
                          else public.photo_ids)
        rows.append(NewDelivery(partner.id, event_id, key, alert.id, kind, body))
    enqueue(session, rows, at)
    return len(rows)


def event_body(event_id: str, kind: AlertChange, alert: Alert, radius: float, at: dt.datetime,
               fields: dict[str, Any], photo_ids: list[int]) -> str:
    """The JSON a partner receives (compact, keys sorted: the bytes it verifies)."""
    return json.dumps({
        "event_id": event_id, "type": f"alert.{kind.value}", "occurred_at": at.isoformat(),
        "alert": {
            "alert_id": alert.id, "case_id": alert.case_id, "category": alert.category.value,
            "status": alert.status.value,
            "outcome": None if alert.outcome is None else alert.outcome.value,
            "issued_at": alert.issued_at.isoformat(),
            "resolved_at": None if alert.resolved_at is None else alert.resolved_at.isoformat(),
            "area": {"lat": alert.lat, "lon": alert.lon,
                     "radius_km": None if math.isinf(radius) else radius},
            "fields": fields,
            "photo_ids": photo_ids,  # GET /v1/alerts/{case_id}/photos/{id}, a tip_app key
        },
    }, sort_keys=True, separators=(",", ":"))
