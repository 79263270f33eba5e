"""Investigators' decisions on candidates: store one (and the status it sets), read those on
a sighting and a case.

A decision keys on the sighting face and the case, not on a candidate row or a model, so it
outlives re-matching and reindexing. The functions flush but never commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from matcher.store.candidates import OPEN
from matcher.store.errors import CandidateNotFound, InvalidRecord
from matcher.store.models import Candidate, Decision, Face, utcnow
from matcher.vocabulary import NOTE_MAX, Verdict


def decisions_on(
    session: Session, pairs: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], list[Decision]]:
    """Decisions on any face of each (sighting id, case id) pair, oldest first."""
    wanted = set(pairs)
    if not wanted:
        return {}
    sightings, cases = {s for s, _ in wanted}, {c for _, c in wanted}
    found: dict[tuple[int, int], list[Decision]] = {pair: [] for pair in wanted}
    rows = session.execute(
        select(Decision, Face.sighting_id).join(Face, Decision.sighting_face_id == Face.id)
        .where(Face.sighting_id.in_(sightings), Decision.case_id.in_(cases))
        .order_by(Decision.id)
    ).all()
    for decision, sighting_id in rows:
        pair = (sighting_id, decision.case_id)
        if pair in found:
            found[pair].append(decision)
    return found


@dataclass(frozen=True)
class Decided:
    decision: Decision
    candidate: Candidate
    also: list[int]  # other open candidate rows of the same face and case (other models)


def decide(
    session: Session, candidate_id: int, verdict: Verdict | str, note: str = "",
    api_key_id: int | None = None, reviewer: str = "",
) -> Decided:
    """Stores a decision and sets the candidate's status (and reviewer) from it.

    The verdict is about a sighting face and a case, so the pair's other open candidate rows
    (found by other models) take the same status. A later decision overrides an earlier one,
    also when two arrive at once: the status is written by an UPDATE that always runs, before
    the decision is stored, so the transaction that stores the latest decision writes last.
    (An ORM change read first skipped its UPDATE when the new value equalled the one it had
    read, and on SQLite, where FOR UPDATE renders nothing, that value could be stale: a
    `match` posted against a concurrent `not_match` left the candidate rejected.)
    """
    verdict = Verdict(verdict)
    if len(note) > NOTE_MAX:
        raise InvalidRecord(f"a note holds at most {NOTE_MAX} characters")
    pair = session.execute(select(Candidate.sighting_face_id, Candidate.case_id).where(
        Candidate.id == candidate_id)).one_or_none()  # never changes: no lock needed
    if pair is None:
        raise CandidateNotFound(f"no candidate {candidate_id}")
    of_pair = and_(Candidate.sighting_face_id == pair.sighting_face_id,
                   Candidate.case_id == pair.case_id)
    # PostgreSQL: the pair's rows locked in id order, so two decisions on two models' rows of
    # one pair queue instead of deadlocking. SQLite renders no FOR UPDATE: the UPDATE below,
    # the transaction's first write, takes its only write lock, and the reads after it see
    # every decision committed before.
    session.execute(select(Candidate.id).where(of_pair).order_by(Candidate.id)
                    .with_for_update()).all()
    changed = set(session.scalars(
        update(Candidate)
        .where(of_pair, or_(Candidate.id == candidate_id, Candidate.status.in_(OPEN)))
        .values(status=verdict.candidate_status, reviewed_at=utcnow(), reviewed_by=reviewer)
        .returning(Candidate.id).execution_options(synchronize_session=False)))
    if candidate_id not in changed:  # erased (a purge, a case erased) since it was read
        raise CandidateNotFound(f"no candidate {candidate_id}")
    decision = Decision(
        candidate_id=candidate_id, sighting_face_id=pair.sighting_face_id,
        case_id=pair.case_id, verdict=verdict, note=note, api_key_id=api_key_id,
        reviewer=reviewer,
    )
    session.add(decision)
    session.flush()
    # The rows as written, also in this session's identity map (a caller may hold them).
    rows = {row.id: row for row in session.scalars(
        select(Candidate).where(Candidate.id.in_(changed))
        .execution_options(populate_existing=True))}
    return Decided(decision, rows[candidate_id], sorted(changed - {candidate_id}))
