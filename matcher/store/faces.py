"""Faces as the pipeline reports them, turned into rows (of a case photo or a sighting), and
faces read back by id.

Like every store module that writes, these functions add and flush but never commit: the
caller owns the transaction (`session_scope`, or `photo_transaction` when a photo file goes
with the rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from numpy.typing import ArrayLike
from sqlalchemy import select
from sqlalchemy.orm import Session

from matcher.store.checks import check_points
from matcher.store.errors import InvalidRecord, NotFound
from matcher.store.models import Face, FaceVector, descriptor_to_bytes


@dataclass(frozen=True)
class NewFace:
    """A face as the pipeline reports it (the service converts matcher.embed's Face)."""

    box: tuple[float, float, float, float]
    landmarks: ArrayLike  # (5, 2)
    score: float
    size_px: float
    sharpness: float
    vector: ArrayLike  # (dim,) float
    model_id: str
    unfit_reasons: Sequence[str] = ()
    detector: str | None = None  # the detector's name
    keypoints: ArrayLike | None = None  # (5, 2), the detector's own points, if it has them


def face_row(face: NewFace) -> Face:
    """The row of a new face (of a case photo or a sighting, which adds it) with its one
    vector; a malformed box, points or descriptor is refused before anything is written."""
    descriptor, dim = descriptor_to_bytes(face.vector)
    if len(face.box) != 4:
        raise InvalidRecord("a box is (left, top, right, bottom)")
    return Face(
        box=[float(v) for v in face.box], landmarks=check_points("landmarks", face.landmarks),
        score=float(face.score), size_px=float(face.size_px), sharpness=float(face.sharpness),
        unfit_reasons=list(face.unfit_reasons), fit=not face.unfit_reasons,
        detector=face.detector,
        keypoints=None if face.keypoints is None else check_points("keypoints", face.keypoints),
        vectors=[FaceVector(model_id=face.model_id, dim=dim, descriptor=descriptor)],
    )


def get_face(session: Session, face_id: int) -> Face:
    face = session.get(Face, face_id)
    if face is None:
        raise NotFound(f"no face {face_id}")
    return face


def get_faces(session: Session, face_ids: Iterable[int]) -> list[Face]:
    ids = list(face_ids)
    return list(session.scalars(select(Face).where(Face.id.in_(ids)).order_by(Face.id)))


def still_stored_faces(session: Session, face_ids: Iterable[int]) -> set[int]:
    """The faces among these that the store still has, held until the transaction ends: FOR
    SHARE on PostgreSQL, so a purge that would delete one waits for the commit; SQLite renders
    no lock, and has one writer at a time anyway."""
    wanted = list(face_ids)
    if not wanted:
        return set()
    return set(session.scalars(select(Face.id).where(Face.id.in_(wanted))
                               .with_for_update(read=True)))
