"""A case whole, as an investigator weighs it: every photo with the age on it, every candidate
and confirmed match over time, and where and when the person was seen (a list, no map).

Why: deciding one sighting goes better with the case's story in view: which photos the
comparison rests on and how old the person was on each, and the sightings already confirmed
(a sighting 600 km from the last confirmed one a day later is suspicious). The read of the
case and of every candidate listed is audited (`via: case_view`) in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from matcher.service.ages import Born, age_on, photo_age
from matcher.service.records import CaseDetail, CasePhotoRecord
from matcher.service.review import Place
from matcher.service.runtime import Runtime
from matcher.store import AuditEntry, get_case, record, session_scope
from matcher.store.lineup import CASE_HISTORY_MAX, HistoryRow, case_history, confirmed_sightings
from matcher.vocabulary import Actor, CandidateStatus


@dataclass(frozen=True)
class AgedPhoto:
    photo: CasePhotoRecord
    age: float | None  # on the photo: given with it, else from its date


@dataclass(frozen=True)
class CaseEvent:
    """A candidate of the case: which sighting, how close, what was decided."""

    candidate_id: int
    status: CandidateStatus
    distance: float
    threshold: float
    false_match_rate: float | None
    sighting: Place
    sighting_face_id: int
    case_face_id: int
    age_at_sighting: float | None
    reviewed_by: str | None
    reviewed_at: dt.datetime | None

    @property
    def under_threshold(self) -> bool:
        return self.distance <= self.threshold


@dataclass(frozen=True)
class CaseView:
    case: CaseDetail
    age_now: float | None
    photos: list[AgedPhoto]
    history: list[CaseEvent]  # under the threshold or decided, newest sighting first
    more: bool  # older candidates beyond `history`
    seen: list[CaseEvent]  # confirmed, one per sighting, oldest first


def case_view(matcher: Runtime, actor: Actor, case_id: int, limit: int = CASE_HISTORY_MAX,
              today: dt.date | None = None) -> CaseView:
    """The case's view (CaseNotFound)."""
    today = today or dt.datetime.now(dt.UTC).date()
    with session_scope(matcher.sessions) as session:
        case = CaseDetail.of(get_case(session, case_id))
        born = Born(case.date_of_birth, case.age_when_missing, case.missing_since)
        rows, more = case_history(session, case_id, limit)
        history = [_event(row, born) for row in rows]
        seen = [_event(row, born) for row in confirmed_sightings(session, case_id)]
        listed = sorted({event.candidate_id for event in (*history, *seen)})
        record(session, actor, AuditEntry("read", "case", case_id, {"via": "case_view"}),
               *(AuditEntry("read", "candidate", candidate, {
                   "via": "case_view", "case_id": case_id}) for candidate in listed))
    photos = [AgedPhoto(photo, photo_age(born, photo.taken_on, photo.age_at_photo))
              for photo in case.photos]
    return CaseView(case, age_on(born, today), photos, history, more, seen)


def _event(row: HistoryRow, born: Born) -> CaseEvent:
    c, sighting = row.candidate, row.sighting
    return CaseEvent(
        candidate_id=c.id, status=c.status, distance=c.distance, threshold=c.threshold,
        false_match_rate=c.false_match_rate,
        sighting=Place(sighting.id, sighting.taken_at, sighting.uploaded_at, sighting.lat,
                       sighting.lon, sighting.burst_of),
        sighting_face_id=c.sighting_face_id, case_face_id=c.case_face_id,
        age_at_sighting=age_on(born, row.seen_at.date()),
        reviewed_by=c.reviewed_by, reviewed_at=c.reviewed_at,
    )
