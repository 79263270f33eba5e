"""What the retention rules delete: old sightings nobody needs, whole cases on request."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from matcher.store.candidates import OPEN
from matcher.store.errors import CaseNotFound
from matcher.store.models import Candidate, Case, CasePhoto, Face, Sighting
from matcher.vocabulary import CandidateStatus

# A candidate under its threshold in one of these states waits for an investigator (`OPEN`),
# or was compared and could not be decided: its sighting stays for a later look (a better case
# photo may settle it), as a possible sighting of the person.
UNDECIDED = (*OPEN, CandidateStatus.INCONCLUSIVE)


@dataclass(frozen=True)
class Deleted:
    face_ids: list[int]  # to take out of the indexes
    sha256s: list[str]  # photo files to delete once no other row uses them


def _still_needed() -> ColumnElement[bool]:
    """A sighting (correlated) someone needs: a confirmed candidate, or one under its
    threshold still waiting, asked about or inconclusive (near misses above the threshold,
    kept for reference, do not hold a sighting back)."""
    return exists().where(and_(
        Face.sighting_id == Sighting.id, Candidate.sighting_face_id == Face.id,
        or_(Candidate.status == CandidateStatus.CONFIRMED,
            and_(Candidate.status.in_(UNDECIDED), Candidate.distance <= Candidate.threshold))))


def _purgeable(uploaded_before: dt.datetime) -> ColumnElement[bool]:
    return and_(Sighting.uploaded_at < uploaded_before, ~_still_needed())


def unmatched_sightings(session: Session, uploaded_before: dt.datetime, limit: int = 500
                        ) -> list[int]:
    """Sightings uploaded before the date that matched nobody, oldest first."""
    return list(session.scalars(
        select(Sighting.id).where(_purgeable(uploaded_before)).order_by(Sighting.id)
        .limit(limit)))


def count_unmatched_sightings(session: Session, uploaded_before: dt.datetime) -> int:
    """How many sightings `unmatched_sightings` would give with no limit."""
    return int(session.scalar(
        select(func.count()).select_from(Sighting).where(_purgeable(uploaded_before))) or 0)


@dataclass(frozen=True)
class DeletedSightings(Deleted):
    sighting_ids: list[int]  # those actually deleted, in id order


def delete_sightings(session: Session, sighting_ids: list[int], uploaded_before: dt.datetime
                     ) -> DeletedSightings:
    """Deletes those of the sightings that still matched nobody when the DELETE ran, with
    their faces, vectors, candidates and decisions.

    They were chosen before: an investigator may have confirmed a candidate since, or a new
    case photo matched one. The DELETE asks again, and on PostgreSQL what it reads cannot
    change under it: the candidates are locked, then the faces, the order `decide` takes them
    in (a decision's row references its candidate's face). A decision or a new candidate in
    flight is waited for, then seen by the DELETE; one that comes later waits for the DELETE
    and finds the rows gone. SQLite renders no FOR UPDATE and needs none: its DELETE holds
    the only write lock and reads the latest commits.
    """
    if not sighting_ids:
        return DeletedSightings([], [], [])
    _lock_candidates(session, sighting_ids)
    owners = _lock_faces(session, sighting_ids)
    rows = session.execute(
        delete(Sighting).where(Sighting.id.in_(sighting_ids), _purgeable(uploaded_before))
        .returning(Sighting.id, Sighting.sha256)
        .execution_options(synchronize_session=False)).all()
    session.flush()
    deleted = {row.id for row in rows}
    face_ids = [face_id for face_id, sighting_id in owners if sighting_id in deleted]
    return DeletedSightings(face_ids, sorted({row.sha256 for row in rows}), sorted(deleted))


def _lock_candidates(session: Session, sighting_ids: list[int]) -> None:
    session.execute(
        select(Candidate.id).join(Face, Candidate.sighting_face_id == Face.id)
        .where(Face.sighting_id.in_(sighting_ids)).order_by(Candidate.id)
        .with_for_update(of=Candidate)).all()


def _lock_faces(session: Session, sighting_ids: list[int]) -> list[tuple[int, int]]:
    """(face id, sighting id) of the sightings' faces (a sighting's faces never change after
    it is stored, so these are the faces the DELETE takes)."""
    faces = session.execute(
        select(Face.id, Face.sighting_id).where(Face.sighting_id.in_(sighting_ids))
        .order_by(Face.id).with_for_update()).all()
    return [(face_id, sighting_id) for face_id, sighting_id in faces if sighting_id is not None]


def erase_case(session: Session, case_id: int) -> Deleted:
    """Deletes a case with its photos, faces, vectors, candidates and decisions."""
    case = session.get(Case, case_id)
    if case is None:
        raise CaseNotFound(f"no case {case_id}")
    face_ids = list(session.scalars(select(Face.id).join(CasePhoto).where(
        CasePhoto.case_id == case_id)))
    sha256s = list(session.scalars(select(CasePhoto.sha256).where(CasePhoto.case_id == case_id)))
    session.execute(delete(Case).where(Case.id == case_id))
    session.flush()
    return Deleted(face_ids, sorted(set(sha256s)))
