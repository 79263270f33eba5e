"""Store queries of the investigator's desk: the lineup of one sighting face (every case it
was compared with, most likely first) and a case's history (its candidates over time, and the
sightings confirmed as the missing person).

Why a module of its own: the review queue (review.py) lists candidates across sightings; the
desk looks at one face or one case whole, near misses included. Like every store module,
functions read and flush but never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session, aliased, selectinload

from matcher.store.errors import NotFound
from matcher.store.models import Candidate, Case, CasePhoto, Decision, Face, Sighting
from matcher.vocabulary import CandidateStatus

# At most this many candidates in a case's history: the newest, with `more` set beyond.
CASE_HISTORY_MAX = 200


def _under_threshold() -> ColumnElement[bool]:
    return Candidate.distance <= Candidate.threshold


def _shown() -> ColumnElement[bool]:
    """What an investigator sees without asking for near misses: candidates under the
    threshold in force when they were found, and any candidate already decided (a near miss
    confirmed or rejected by someone stays in view)."""
    return or_(_under_threshold(), Candidate.status != CandidateStatus.PENDING)


def _most_likely_first() -> tuple[Any, ...]:
    """The queue's order (review.py, `Likelihood`): rated candidates by their calibrated false
    match rate, the unrated after them; then distance / threshold, then id."""
    return (Candidate.false_match_rate.is_(None), Candidate.false_match_rate,
            Candidate.distance_ratio, Candidate.id)


@dataclass(frozen=True)
class LineupRow:
    """One case compared with the sighting face: the candidate, the case, the case's closest
    face (the one the search ranked it by) and that face's photo."""

    candidate: Candidate
    case: Case
    case_face: Face
    case_photo: CasePhoto | None


def sighting_face(session: Session, face_id: int) -> Face:
    """A face of a sighting, with its sighting and that sighting's faces (NotFound for a face
    of a case photo too: a lineup is of a sighting face)."""
    face = session.get(Face, face_id, options=[
        selectinload(Face.sighting).selectinload(Sighting.faces)])
    if face is None or face.sighting is None:
        raise NotFound(f"no sighting face {face_id}")
    return face


def lineup_rows(session: Session, face_id: int, near_misses: bool = False) -> list[LineupRow]:
    """The cases the face was compared with, most likely first: those under the threshold (and
    any decided), and with `near_misses` the pending ones above it too."""
    case_face = aliased(Face)
    query = (
        select(Candidate, Case, case_face, CasePhoto)
        .join(Case, Candidate.case_id == Case.id)
        .join(case_face, Candidate.case_face_id == case_face.id)
        .outerjoin(CasePhoto, case_face.case_photo_id == CasePhoto.id)
        .where(Candidate.sighting_face_id == face_id)
    )
    if not near_misses:
        query = query.where(_shown())
    return [LineupRow(*row) for row in session.execute(query.order_by(*_most_likely_first()))]


def near_miss_count(session: Session, face_id: int) -> int:
    """How many pending candidates of the face are above their threshold (left out of
    `lineup_rows` unless asked for)."""
    return int(session.scalar(select(func.count()).select_from(Candidate).where(
        Candidate.sighting_face_id == face_id, ~_shown())) or 0)


def face_decisions(session: Session, face_id: int, case_ids: Iterable[int]
                   ) -> dict[int, list[Decision]]:
    """The decisions on the face for each of these cases, oldest first."""
    wanted = set(case_ids)
    found: dict[int, list[Decision]] = {case: [] for case in wanted}
    if wanted:
        for decision in session.scalars(select(Decision).where(
                Decision.sighting_face_id == face_id, Decision.case_id.in_(wanted))
                .order_by(Decision.id)):
            found[decision.case_id].append(decision)
    return found


@dataclass(frozen=True)
class HistoryRow:
    """A candidate of a case with the sighting it came from."""

    candidate: Candidate
    sighting_face: Face
    sighting: Sighting

    @property
    def seen_at(self) -> dt.datetime:
        return self.sighting.taken_at or self.sighting.uploaded_at


def _seen() -> Any:
    return func.coalesce(Sighting.taken_at, Sighting.uploaded_at)


def _history_query(case_id: int) -> Any:
    sighting_face = aliased(Face)
    return (
        select(Candidate, sighting_face, Sighting)
        .join(sighting_face, Candidate.sighting_face_id == sighting_face.id)
        .join(Sighting, sighting_face.sighting_id == Sighting.id)
        .where(Candidate.case_id == case_id)
    )


def case_history(session: Session, case_id: int, limit: int = CASE_HISTORY_MAX
                 ) -> tuple[list[HistoryRow], bool]:
    """The case's candidates an investigator sees (under the threshold, or decided), newest
    sighting first, at most `limit`; and whether there are more."""
    limit = max(1, min(limit, CASE_HISTORY_MAX))
    rows = [HistoryRow(*row) for row in session.execute(
        _history_query(case_id).where(_shown())
        .order_by(_seen().desc(), Candidate.id.desc()).limit(limit + 1))]
    return rows[:limit], len(rows) > limit


def confirmed_sightings(session: Session, case_id: int) -> list[HistoryRow]:
    """The case's confirmed candidates, one per sighting (its closest face), oldest sighting
    first: where and when the person was seen."""
    rows = [HistoryRow(*row) for row in session.execute(
        _history_query(case_id).where(Candidate.status == CandidateStatus.CONFIRMED)
        .order_by(_seen(), Candidate.distance_ratio, Candidate.id))]
    first: dict[int, HistoryRow] = {}
    for row in rows:
        first.setdefault(row.sighting.id, row)
    return list(first.values())
