"""Candidates: a case proposed for a sighting face. Store them, keep out the pairs already
settled or proposed, list them, set their status, and rate the ones stored before their model
had a calibration.

The functions add and flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import bindparam, func, select, tuple_, update
from sqlalchemy.orm import Session

from matcher.store.errors import CandidateNotFound, InvalidRecord
from matcher.store.models import Base, Candidate, Case, Decision, Face, utcnow
from matcher.vocabulary import CandidateStatus, CaseStatus, Category, Verdict

log = logging.getLogger(__name__)

OPEN = (CandidateStatus.PENDING, CandidateStatus.NEEDS_INFO)  # still waiting for a verdict


@dataclass(frozen=True)
class NewCandidate:
    sighting_face_id: int
    case_id: int
    case_face_id: int
    distance: float
    rank: int
    model_id: str
    threshold: float
    # The calibrated false match rate per compared face of the distance, on the scale of every
    # model (None without a calibration of the model): what the review queue orders by.
    false_match_rate: float | None = None
    reported_for_alert: bool = False  # the sighting answered this case's alert


def add_candidates(session: Session, candidates: Sequence[NewCandidate]) -> list[Candidate]:
    rows = [
        Candidate(
            sighting_face_id=c.sighting_face_id, case_id=c.case_id, case_face_id=c.case_face_id,
            distance=float(c.distance), rank=int(c.rank), model_id=c.model_id,
            threshold=float(c.threshold), status=CandidateStatus.PENDING,
            false_match_rate=_rate(c.false_match_rate), reported_for_alert=c.reported_for_alert,
        )
        for c in candidates
    ]
    session.add_all(rows)
    session.flush()
    return rows


def _rate(value: float | None) -> float | None:
    """A false match rate, or None; a NaN or a number outside [0, 1] would misplace the
    candidate in the queue for good."""
    if value is None:
        return None
    if not 0.0 <= float(value) <= 1.0:  # NaN fails too
        raise InvalidRecord(f"not a false match rate: {value}")
    return float(value)


def matchable(session: Session, candidates: Sequence[NewCandidate]) -> list[NewCandidate]:
    """The candidates still worth an investigator's time, ranks renumbered per face.

    Drops cases that are no longer active (closed while the search ran, by any process) and
    pairs of sighting
    face and case already settled by an investigator, whatever model found them: the latest
    decision on the pair is `not_match` (look-alikes and siblings would otherwise come back at
    every re-match) or `match` (its confirmed candidate stands).
    """
    if not candidates:
        return []
    case_ids = {c.case_id for c in candidates}
    # FOR SHARE on PostgreSQL: a case being closed by another process is read once that
    # commits, and a close that comes after waits for the caller's commit; so no candidate
    # outlives its case's closing (SQLite has one writer at a time).
    active = set(session.scalars(select(Case.id).where(
        Case.id.in_(case_ids), Case.status == CaseStatus.ACTIVE).with_for_update(read=True)))
    face_ids = {c.sighting_face_id for c in candidates}
    latest = (
        select(func.max(Decision.id))
        .where(Decision.sighting_face_id.in_(face_ids), Decision.case_id.in_(case_ids))
        .group_by(Decision.sighting_face_id, Decision.case_id)
    )
    settled = {(int(f), int(c)) for f, c in session.execute(
        select(Decision.sighting_face_id, Decision.case_id).where(
            Decision.id.in_(latest), Decision.verdict.in_([Verdict.NOT_MATCH, Verdict.MATCH])))}
    kept: list[NewCandidate] = []
    ranks: dict[int, int] = {}
    for c in sorted(candidates, key=lambda c: (c.sighting_face_id, c.rank)):
        if c.case_id in active and (c.sighting_face_id, c.case_id) not in settled:
            ranks[c.sighting_face_id] = rank = ranks.get(c.sighting_face_id, 0) + 1
            kept.append(replace(c, rank=rank))
    return kept


def candidate_pairs(
    session: Session, case_id: int, sighting_face_ids: Iterable[int]
) -> set[int]:
    """The sighting faces among these that already have a candidate row for the case, of any
    model: a pair is proposed once. (A new model's retro search proposed again the pairs an
    older model's rows still held open, and the queue showed them twice; revision 0010.)"""
    ids = set(sighting_face_ids)
    if not ids:
        return set()
    return set(session.scalars(select(Candidate.sighting_face_id).where(
        Candidate.case_id == case_id, Candidate.sighting_face_id.in_(ids))))


def candidate_distances(
    session: Session, model_id: str, sighting_face_ids: Iterable[int]
) -> dict[int, list[float]]:
    """Distances of the existing candidates of each sighting face (one model)."""
    ids = set(sighting_face_ids)
    found: dict[int, list[float]] = {face: [] for face in ids}
    if ids:
        for face, distance in session.execute(select(
                Candidate.sighting_face_id, Candidate.distance).where(
                Candidate.model_id == model_id, Candidate.sighting_face_id.in_(ids))):
            found[int(face)].append(float(distance))
    return found


def list_candidates(
    session: Session, status: CandidateStatus | str | None = None, case_id: int | None = None,
    sighting_id: int | None = None, limit: int = 100, after_id: int = 0,
) -> list[Candidate]:
    query = select(Candidate).where(Candidate.id > after_id).order_by(Candidate.id).limit(limit)
    if status is not None:
        query = query.where(Candidate.status == CandidateStatus(status))
    if case_id is not None:
        query = query.where(Candidate.case_id == case_id)
    if sighting_id is not None:
        query = query.join(Face, Face.id == Candidate.sighting_face_id).where(
            Face.sighting_id == sighting_id)
    return list(session.scalars(query))


def set_candidate_status(
    session: Session, candidate_id: int, status: CandidateStatus | str,
    reviewed_by: str | None = None,
) -> Candidate:
    candidate = session.get(Candidate, candidate_id)
    if candidate is None:
        raise CandidateNotFound(f"no candidate {candidate_id}")
    candidate.status = CandidateStatus(status)
    pending = candidate.status is CandidateStatus.PENDING
    candidate.reviewed_at = None if pending else utcnow()
    candidate.reviewed_by = None if pending else reviewed_by
    session.flush()
    log.info("candidate %d (case %d) is now %s", candidate.id, candidate.case_id,
             candidate.status.value)
    return candidate


@dataclass(frozen=True)
class Unrated:
    """A candidate without a false match rate (stored before its model had a calibration, or
    before revision 0008), with what it takes to rate it."""

    id: int
    distance: float
    category: Category
    distance_ratio: float


def unrated_candidates(
    session: Session, model_id: str, categories: Iterable[Category], status: CandidateStatus,
    after: Unrated | None = None, limit: int = 1000,
) -> list[Unrated]:
    """The next `limit` candidates of the model, status and case categories without a rate,
    after `after` in the queue index's order (distance / threshold, id): a keyset walk of that
    index's unrated range, which the rows filled meanwhile leave."""
    query = (
        select(Candidate.id, Candidate.distance, Case.category, Candidate.distance_ratio)
        .join(Case, Candidate.case_id == Case.id)
        .where(Candidate.status == status, Candidate.false_match_rate.is_(None),
               Candidate.model_id == model_id, Case.category.in_(list(categories)))
    )
    if after is not None:
        query = query.where(tuple_(Candidate.distance_ratio, Candidate.id) > tuple_(
            after.distance_ratio, after.id))
    rows = session.execute(query.order_by(Candidate.distance_ratio, Candidate.id).limit(limit))
    return [Unrated(int(i), float(d), Category(c), float(r)) for i, d, c, r in rows]


def set_false_match_rates(session: Session, rates: Iterable[tuple[int, float]]) -> None:
    """Sets the rate of candidates that have none: one UPDATE, executed for every pair."""
    values = [{"candidate": int(i), "rate": float(r)} for i, r in rates]
    if values:
        table = Base.metadata.tables["candidates"]  # Core: an executemany of one UPDATE
        session.connection().execute(update(table).where(
            table.c.id == bindparam("candidate"), table.c.false_match_rate.is_(None),
        ).values(false_match_rate=bindparam("rate")), values)
