"""What the retention rules delete: old sightings nobody needs, whole cases on request."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, delete, exists, or_, select
from sqlalchemy.orm import Session

from matcher.store.errors import CaseNotFound
from matcher.store.models import Candidate, CandidateStatus, Case, CasePhoto, Face, Sighting

# A candidate under its threshold in one of these states waits for an investigator.
OPEN = (CandidateStatus.PENDING, CandidateStatus.NEEDS_INFO)


@dataclass(frozen=True)
class Deleted:
    face_ids: list[int]  # to take out of the indexes
    sha256s: list[str]  # photo files to delete once no other row uses them


def unmatched_sightings(session: Session, uploaded_before: dt.datetime, limit: int = 500
                        ) -> list[int]:
    """Sightings uploaded before the date that matched nobody, oldest first: no confirmed
    candidate, and none under its threshold still waiting or asked about (near misses above
    the threshold, kept for reference, do not hold a sighting back)."""
    still_needed = exists().where(and_(
        Face.sighting_id == Sighting.id, Candidate.sighting_face_id == Face.id,
        or_(Candidate.status == CandidateStatus.CONFIRMED,
            and_(Candidate.status.in_(OPEN), Candidate.distance <= Candidate.threshold))))
    return list(session.scalars(
        select(Sighting.id).where(Sighting.uploaded_at < uploaded_before, ~still_needed)
        .order_by(Sighting.id).limit(limit)))


def delete_sightings(session: Session, sighting_ids: list[int]) -> Deleted:
    """Deletes sightings with their faces, vectors, candidates and decisions."""
    if not sighting_ids:
        return Deleted([], [])
    face_ids = list(session.scalars(select(Face.id).where(Face.sighting_id.in_(sighting_ids))))
    sha256s = list(session.scalars(select(Sighting.sha256).where(Sighting.id.in_(sighting_ids))))
    session.execute(delete(Sighting).where(Sighting.id.in_(sighting_ids)))
    session.flush()
    return Deleted(face_ids, sorted(set(sha256s)))


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
