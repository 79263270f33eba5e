"""The lineup of one sighting face: every case it was compared with, side by side, so that an
investigator decides with the alternatives in view.

Why: the queue shows one candidate at a time, and only those under the threshold. When the
right child ranked second, or just above the threshold, nothing showed it. A lineup holds the
sighting (its whole photo with every face, the reporter's note) and, per case, the case's
closest face and its photo, the ages (on that photo, on the sighting, today), the distance
with what it means (the calibrated false match rate, the expected false candidates per
search) and the decisions so far. Near misses above the threshold are counted, and listed when
asked for, each marked as such.

Every candidate shown is audited (`read candidate`, via `lineup`), and the sighting too (its
note is shown), in the same transaction as the read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from matcher.service.ages import Ages, Born, ages
from matcher.service.confidence import expected_false, searched_faces
from matcher.service.records import SightingRecord
from matcher.service.review import DecisionRecord
from matcher.service.runtime import Runtime
from matcher.store import AuditEntry, Case, Decision, record, session_scope
from matcher.store.lineup import LineupRow, face_decisions, lineup_rows, near_miss_count
from matcher.store.lineup import sighting_face as stored_sighting_face
from matcher.vocabulary import Actor, CandidateStatus, CaseStatus, Category, Sex


@dataclass(frozen=True)
class PersonRecord:
    """The case's fields an examiner weighs beside the faces."""

    id: int
    name: str
    category: Category
    status: CaseStatus
    sex: Sex
    date_of_birth: dt.date | None
    age_when_missing: float | None
    missing_since: dt.date
    last_seen_place: str | None
    last_seen_lat: float | None
    last_seen_lon: float | None
    last_seen_at: dt.datetime | None

    @classmethod
    def of(cls, case: Case) -> PersonRecord:
        return cls(case.id, case.name, case.category, case.status, case.sex, case.date_of_birth,
                   case.age_when_missing, case.missing_since, case.last_seen_place,
                   case.last_seen_lat, case.last_seen_lon, case.last_seen_at)

    @property
    def born(self) -> Born:
        return Born(self.date_of_birth, self.age_when_missing, self.missing_since)


@dataclass(frozen=True)
class LineupCard:
    """One case beside the sighting face."""

    candidate_id: int
    status: CandidateStatus
    rank: int
    distance: float
    threshold: float  # in force when the candidate was found
    model_id: str
    false_match_rate: float | None  # per compared face, calibrated; None without calibration
    expected_false_per_search: float | None  # at today's number of case faces
    case: PersonRecord
    case_face_id: int  # the case's face closest to the sighting face
    case_face_box: list[float]  # in its photo, [left, top, right, bottom] px
    case_photo_id: int | None
    ages: Ages
    reviewed_by: str | None
    reviewed_at: dt.datetime | None
    decisions: list[DecisionRecord]  # on this face and case, oldest first

    @property
    def under_threshold(self) -> bool:
        return self.distance <= self.threshold


@dataclass(frozen=True)
class Lineup:
    sighting: SightingRecord
    face_id: int  # the sighting face searched
    cards: list[LineupCard]
    near_misses: int  # pending candidates above the threshold, not in `cards` unless asked for


def face_lineup(matcher: Runtime, actor: Actor, face_id: int, near_misses: bool = False,
                today: dt.date | None = None) -> Lineup:
    """The lineup of a sighting face (NotFound for an unknown face or one of a case photo)."""
    today = today or dt.datetime.now(dt.UTC).date()
    with session_scope(matcher.sessions) as session:
        face = stored_sighting_face(session, face_id)
        sighting = face.sighting
        assert sighting is not None  # stored_sighting_face refuses case faces
        rows = lineup_rows(session, face_id, near_misses)
        hidden = 0 if near_misses else near_miss_count(session, face_id)
        decisions = face_decisions(session, face_id, {row.case.id for row in rows})
        seen_on = (sighting.taken_at or sighting.uploaded_at).date()
        faces = searched_faces(matcher, session) if matcher.calibrations else {}
        cards = [_card(matcher, row, decisions[row.case.id], faces, seen_on, today)
                 for row in rows]
        record(session, actor, AuditEntry("read", "sighting", sighting.id, {"via": "lineup"}),
               *(AuditEntry("read", "candidate", card.candidate_id, {
                   "via": "lineup", "case_id": card.case.id, "sighting_id": sighting.id,
                   "face_id": face_id, "under_threshold": card.under_threshold})
                 for card in cards))
        return Lineup(SightingRecord.of(sighting), face_id, cards, hidden)


def _card(matcher: Runtime, row: LineupRow, decisions: list[Decision], faces: dict[str, int],
          seen_on: dt.date, today: dt.date) -> LineupCard:
    c, person, photo = row.candidate, PersonRecord.of(row.case), row.case_photo
    return LineupCard(
        candidate_id=c.id, status=c.status, rank=c.rank, distance=c.distance,
        threshold=c.threshold, model_id=c.model_id, false_match_rate=c.false_match_rate,
        expected_false_per_search=expected_false(matcher, person.category.value, c.distance,
                                                 faces, model_id=c.model_id),
        case=person, case_face_id=row.case_face.id, case_face_box=list(row.case_face.box),
        case_photo_id=photo.id if photo is not None else None,
        ages=ages(person.born, photo.taken_on if photo else None,
                  photo.age_at_photo if photo else None, seen_on, today),
        reviewed_by=c.reviewed_by, reviewed_at=c.reviewed_at,
        decisions=[DecisionRecord.of(d) for d in decisions],
    )
