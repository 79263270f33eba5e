"""Alerts with a lifecycle: a case manager issues one for an active case; it is resolved when
the case is found (`found`) or closed, withdrawn or erased (`cancelled`). Every change is
audited in its own transaction, and takes the next alert change number first (the lock that
orders every alert change: matcher/store/alerts.py).

The alert keeps the point and moment the person was last seen as they were when it was issued,
and the schedule of its area then: a later edit of the case or of the settings does not move
an alert apps already show (cancel it and issue another).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session

from matcher.service.alert_areas import Schedule, schedules
from matcher.service.errors import ServiceError
from matcher.service.partner_events import tell_issued, tell_resolved, tell_updated
from matcher.service.runtime import Runtime
from matcher.store import (
    AuditEntry,
    CaseNotFound,
    NotFound,
    get_case,
    read_photo,
    record,
    session_scope,
)
from matcher.store.alerts import (
    Alert,
    NewAlert,
    forget_place,
    insert_alert,
    latest_alert,
    mark_updated,
    next_seq,
    open_alert,
    public_cases,
    resolve_alert,
)
from matcher.vocabulary import SYSTEM, Actor, AlertOutcome, AlertStatus, CaseStatus, Category

log = logging.getLogger(__name__)


class AlertRefused(ServiceError):
    """The case cannot have an alert now (not active, no last-seen point or moment, nothing
    public); the message says what to do."""


class AlertExists(ServiceError):
    """The case has an active alert already (one at a time)."""

    def __init__(self, message: str, alert_id: int) -> None:
        super().__init__(message)
        self.alert_id = alert_id


class NoAlert(NotFound):
    """The case has no alert (or no active one, to withdraw)."""


@dataclass(frozen=True)
class AlertRecord:
    """An alert as its case manager sees it."""

    id: int
    case_id: int
    category: Category
    status: AlertStatus
    outcome: AlertOutcome | None
    lat: float | None  # the last-seen point it was issued at (None once the case is erased)
    lon: float | None
    last_seen_at: dt.datetime | None
    issued_at: dt.datetime
    issued_by: str
    resolved_at: dt.datetime | None
    schedule: list[tuple[float, float | None]]  # [(from hour, km or None: everywhere)]
    radius_km: float | None  # now, or when it was resolved; None: the whole territory

    @classmethod
    def of(cls, row: Alert, now: dt.datetime) -> AlertRecord:
        schedule = Schedule.of(row.schedule)
        until = row.resolved_at or now
        radius = schedule.radius_km((until - row.issued_at).total_seconds() / 3600)
        return cls(row.id, row.case_id, row.category, row.status, row.outcome, row.lat,
                   row.lon, row.last_seen_at, row.issued_at, row.issued_by, row.resolved_at,
                   schedule.as_lists(), None if radius == float("inf") else radius)


def issue_alert(matcher: Runtime, case_id: int, actor: Actor = SYSTEM) -> AlertRecord:
    """Issues an alert for an active case at its last-seen point and moment, with the schedule
    of its category; raises AlertRefused, AlertExists or CaseNotFound."""
    now = matcher.clock()
    with matcher.case_lock, session_scope(matcher.sessions) as session:
        seq = next_seq(session)  # first: it orders this change after every other
        case = get_case(session, case_id)
        if case.status is not CaseStatus.ACTIVE:
            raise AlertRefused(f"case {case_id} is {case.status.value}: only an active case "
                               "has an alert")
        if case.last_seen_lat is None or case.last_seen_lon is None or case.last_seen_at is None:
            raise AlertRefused(f"case {case_id} has no last-seen point and moment: set "
                               "last_seen_lat, last_seen_lon and last_seen_at first")
        if not case.public_fields:
            raise AlertRefused(f"case {case_id} publishes nothing: set its public_fields first")
        existing = open_alert(session, case_id)
        if existing is not None:
            raise AlertExists(f"case {case_id} has an active alert already ({existing.id})",
                              existing.id)
        schedule = schedules(matcher.settings)[case.category]
        alert = insert_alert(session, NewAlert(
            case_id, case.category, case.last_seen_lat, case.last_seen_lon, case.last_seen_at,
            schedule.as_lists(), now, actor.name), seq)
        told = tell_issued(session, alert, now)  # the partners' outbox, in this commit
        record(session, actor, AuditEntry("create", "alert", alert.id, {
            "case_id": case_id, "schedule": [list(step) for step in schedule.as_lists()],
            "partners_told": told}))
        log.info("alert %d issued for case %d (%s)", alert.id, case_id, case.category.value)
        return AlertRecord.of(alert, now)


def withdraw_alert(matcher: Runtime, case_id: int, actor: Actor = SYSTEM) -> AlertRecord:
    """Resolves the case's active alert as cancelled (issued by mistake, or no longer
    needed) while the case stays open; raises NoAlert when it has none."""
    now = matcher.clock()
    with matcher.case_lock, session_scope(matcher.sessions) as session:
        next_seq(session)  # the order lock; resolve_case_alert takes its own number
        get_case(session, case_id)
        alert = resolve_case_alert(session, case_id, AlertOutcome.CANCELLED, now, actor)
        if alert is None:
            raise NoAlert(f"case {case_id} has no active alert")
        return AlertRecord.of(alert, now)


def read_alert(matcher: Runtime, case_id: int, actor: Actor = SYSTEM) -> AlertRecord:
    """The case's newest alert, active or resolved (the read is audited); NoAlert if none."""
    with session_scope(matcher.sessions) as session:
        alert = latest_alert(session, case_id)
        if alert is None:
            get_case(session, case_id)  # CaseNotFound first, when there is no such case
            raise NoAlert(f"case {case_id} has never had an alert")
        record(session, actor, AuditEntry("read", "alert", alert.id, {"case_id": case_id}))
        return AlertRecord.of(alert, matcher.clock())


def resolve_case_alert(session: Session, case_id: int, outcome: AlertOutcome,
                       at: dt.datetime, actor: Actor) -> Alert | None:
    """Resolves the case's active alert, if any, in the caller's transaction (a case found,
    closed or erased), audited; returns it."""
    alert = open_alert(session, case_id)
    if alert is None:
        return None
    seq = next_seq(session)
    session.refresh(alert)  # another process may have resolved it before the lock
    if alert.status is not AlertStatus.ACTIVE:
        return None
    resolve_alert(session, alert, outcome, at, seq)
    told = tell_resolved(session, alert, at)
    record(session, actor, AuditEntry("resolve", "alert", alert.id, {
        "case_id": case_id, "outcome": outcome.value, "partners_told": told}))
    log.info("alert %d of case %d resolved: %s", alert.id, case_id, outcome.value)
    return alert


@contextmanager
def public_edit(session: Session, case_id: int, at: dt.datetime, actor: Actor) -> Iterator[None]:
    """Around an edit of a case in the caller's transaction (its fields, public fields or
    photos): when what its active alert shows changed, the alert takes a change number (apps
    polling the feed see it `updated`) and every partner told of it hears, audited. An active
    alert must keep showing something: making nothing public raises AlertRefused."""
    before = public_cases(session, [case_id]).get(case_id)
    yield
    alert = open_alert(session, case_id)
    if alert is None:
        return
    after = public_cases(session, [case_id]).get(case_id)
    if after == before:
        return
    if after is None or not (after.fields or after.photo_ids):
        raise AlertRefused(f"case {case_id} has an active alert: it must publish something "
                           "(withdraw the alert first)")
    seq = next_seq(session)
    session.refresh(alert)  # another process may have resolved it before the lock
    if alert.status is not AlertStatus.ACTIVE:
        return
    mark_updated(session, alert, seq)
    told = tell_updated(session, alert, at)
    record(session, actor, AuditEntry("update", "alert", alert.id, {
        "case_id": case_id, "partners_told": told}))


def outcome_of(status: CaseStatus) -> AlertOutcome:
    """What a case's new status means for its alert."""
    return AlertOutcome.FOUND if status is CaseStatus.FOUND else AlertOutcome.CANCELLED


def erase_case_alerts(session: Session, case_id: int, at: dt.datetime, actor: Actor) -> None:
    """Before a case is erased: its active alert is cancelled (apps take it down) and every
    alert of it forgets the place."""
    resolve_case_alert(session, case_id, AlertOutcome.CANCELLED, at, actor)
    forget_place(session, case_id, next_seq(session))


def public_photo(matcher: Runtime, case_id: int, photo_id: int) -> bytes:
    """JPEG bytes of a case's photo while the case has an active alert and made its photos
    public; CaseNotFound otherwise (nothing says which condition failed)."""
    with matcher.sessions() as session:
        case = get_case(session, case_id)
        photo = next((p for p in case.photos if p.id == photo_id), None)
        if (case.status is not CaseStatus.ACTIVE or "photos" not in case.public_fields
                or photo is None or open_alert(session, case_id) is None):
            raise CaseNotFound(f"no public photo {photo_id} of case {case_id}")
        path = photo.path
    return read_photo(matcher.settings.data_dir, path)
