"""Tips that repeat (issue 22, item 6): the reports of one sighting, and the burst groups of
sightings of one moment.

The same photo sent twice (by one app or several) is one sighting: its pixels, re-encoded,
have one SHA-256, and each upload of them is a report (who sent it, when, from where, with
what words). Near-identical photos of one moment are separate sightings linked in a group
(`Sighting.burst_of`, the group's first sighting). Like the other store modules, functions
flush but never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Float, ForeignKey, Index, String, Text, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from matcher.store.checks import check_position
from matcher.store.models import Base, Candidate, Sighting
from matcher.store.models.base import NO_ID_REUSE, Id, position_checks, utcnow
from matcher.store.sightings import NewSighting


class SightingReport(Base):
    """One upload of a sighting's photo: the first, and each repeat of the same pixels."""

    __tablename__ = "sighting_reports"
    __table_args__ = (
        *position_checks(),
        Index("ix_sighting_reports_sighting_id_id", "sighting_id", "id"),
        NO_ID_REUSE,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    sighting_id: Mapped[int] = mapped_column(Id, ForeignKey("sightings.id", ondelete="CASCADE"))
    uploaded_at: Mapped[dt.datetime] = mapped_column()
    taken_at: Mapped[dt.datetime | None] = mapped_column()
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    app: Mapped[str] = mapped_column(String(200))
    api_key_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("api_keys.id", ondelete="SET NULL"))
    reporter_contact: Mapped[str | None] = mapped_column(Text)  # private: never log, never list
    note: Mapped[str | None] = mapped_column(Text)
    alert_case_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("cases.id", ondelete="SET NULL"))


def add_report(session: Session, sighting_id: int, new: NewSighting) -> SightingReport:
    check_position(new.lat, new.lon)
    report = SightingReport(
        sighting_id=sighting_id, uploaded_at=new.uploaded_at or utcnow(),
        taken_at=new.taken_at, lat=new.lat, lon=new.lon, app=new.app,
        api_key_id=new.api_key_id, reporter_contact=new.reporter_contact, note=new.note,
        alert_case_id=new.alert_case_id)
    session.add(report)
    session.flush()
    return report


def sighting_with_photo(session: Session, sha256: str) -> Sighting | None:
    """The (first) sighting whose stored photo has these bytes."""
    return session.scalar(select(Sighting).where(Sighting.sha256 == sha256)
                          .order_by(Sighting.id).limit(1))


def reports_of(session: Session, sighting_ids: Iterable[int]) -> dict[int, list[SightingReport]]:
    """Each sighting's reports, oldest first."""
    ids = set(sighting_ids)
    found: dict[int, list[SightingReport]] = {i: [] for i in ids}
    if ids:
        for row in session.scalars(select(SightingReport).where(
                SightingReport.sighting_id.in_(ids)).order_by(SightingReport.id)):
            found[row.sighting_id].append(row)
    return found


@dataclass(frozen=True)
class Shot:
    """A recent sighting as the burst test reads it."""

    id: int
    phash: int
    burst_of: int | None
    seen_at: dt.datetime  # taken, else uploaded


def recent_shots(session: Session, uploaded_after: dt.datetime) -> list[Shot]:
    rows = session.execute(select(
        Sighting.id, Sighting.phash, Sighting.burst_of, Sighting.taken_at, Sighting.uploaded_at,
    ).where(Sighting.uploaded_at >= uploaded_after, Sighting.phash.is_not(None)))
    return [Shot(int(i), int(p or 0), b, t or u) for i, p, b, t, u in rows]


def join_burst(session: Session, sighting_id: int, first_id: int) -> None:
    """Puts a sighting in the group of `first_id` (which becomes a group of its own first)."""
    session.execute(update(Sighting).where(Sighting.id == first_id, Sighting.burst_of.is_(None))
                    .values(burst_of=first_id))
    session.execute(update(Sighting).where(Sighting.id == sighting_id)
                    .values(burst_of=first_id))


def burst_members(session: Session, group_ids: Iterable[int]) -> dict[int, list[int]]:
    """The sightings of each group, by id."""
    ids = set(group_ids)
    found: dict[int, list[int]] = {i: [] for i in ids}
    if ids:
        for sighting, group in session.execute(
                select(Sighting.id, Sighting.burst_of).where(Sighting.burst_of.in_(ids))
                .order_by(Sighting.id)):
            found[int(group or 0)].append(int(sighting))
    return found


def report_counts(session: Session, sighting_ids: Iterable[int]) -> dict[int, int]:
    ids = set(sighting_ids)
    if not ids:
        return {}
    return {int(s): int(n) for s, n in session.execute(
        select(SightingReport.sighting_id, func.count()).where(
            SightingReport.sighting_id.in_(ids)).group_by(SightingReport.sighting_id))}


def set_phash(session: Session, sighting_id: int, phash: int) -> None:
    session.execute(update(Sighting).where(Sighting.id == sighting_id).values(phash=phash))


def mark_reported(session: Session, case_id: int, sighting_face_ids: Iterable[int]) -> None:
    """The case's candidates of these faces were reported for its alert (by a repeat)."""
    ids = set(sighting_face_ids)
    if ids:
        session.execute(update(Candidate).where(
            Candidate.case_id == case_id, Candidate.sighting_face_id.in_(ids))
            .values(reported_for_alert=True))
