"""Descriptors by model: what a reindex reads (faces a model has not embedded yet, the vectors
it compares two models on) and writes, and what a model can match (its coverage)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sqlalchemy import ColumnElement, and_, distinct, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from matcher.store.models import (
    Case,
    CasePhoto,
    Face,
    FaceVector,
    Sighting,
    descriptor_from_bytes,
    descriptor_to_bytes,
)
from matcher.vocabulary import CaseStatus


@dataclass(frozen=True)
class FaceToEmbed:
    face_id: int
    path: str  # the stored photo it is in, relative to the data dir
    box: tuple[float, float, float, float]
    sighting_id: int | None  # None for a case photo's face
    score: float = 0.0  # the detection it came from: score, detector's name, its keypoints
    detector: str | None = None  # None: stored before detections were kept
    keypoints: list[list[float]] | None = None


def _missing(model_id: str) -> ColumnElement[bool]:
    return ~exists().where(and_(FaceVector.face_id == Face.id, FaceVector.model_id == model_id))


def faces_without_vectors(
    session: Session, model_id: str, after_id: int = 0, limit: int = 500
) -> list[FaceToEmbed]:
    """Faces (of case photos and sightings) with no descriptor from `model_id`, by id."""
    rows = session.execute(
        select(Face.id, Face.box, Face.sighting_id, Face.score, Face.detector, Face.keypoints,
               func.coalesce(CasePhoto.path, Sighting.path).label("path"))
        .outerjoin(CasePhoto, Face.case_photo_id == CasePhoto.id)
        .outerjoin(Sighting, Face.sighting_id == Sighting.id)
        .where(Face.id > after_id, _missing(model_id))
        .order_by(Face.id).limit(limit)
    ).all()
    return [FaceToEmbed(int(r.id), str(r.path), tuple(float(v) for v in r.box),  # type: ignore[arg-type]
                        None if r.sighting_id is None else int(r.sighting_id), float(r.score),
                        r.detector, r.keypoints) for r in rows]


def vectors_to_derive(session: Session, from_model: str, to_model: str, after_id: int = 0,
                      limit: int = 500) -> list[tuple[int, NDArray[np.float32]]]:
    """(face id, `from_model` descriptor) of faces that have one and no `to_model` one, by id."""
    target = aliased(FaceVector)
    rows = session.execute(
        select(FaceVector.face_id, FaceVector.descriptor, FaceVector.dim)
        .where(FaceVector.model_id == from_model, FaceVector.face_id > after_id,
               ~exists().where(and_(target.face_id == FaceVector.face_id,
                                    target.model_id == to_model)))
        .order_by(FaceVector.face_id).limit(limit)
    ).all()
    return [(int(r.face_id), descriptor_from_bytes(r.descriptor, r.dim)) for r in rows]


def count_vectors(session: Session, model_id: str) -> int:
    """How many faces `model_id` has embedded (an index range count)."""
    return int(session.scalar(select(func.count()).select_from(FaceVector)
                              .where(FaceVector.model_id == model_id)) or 0)


def count_faces_without_vectors(session: Session, model_id: str) -> int:
    # All faces less those with a vector of the model (one each, the key says; a vector's face
    # exists, the cascade says): two counts over indexes instead of a probe per face.
    faces = int(session.scalar(select(func.count()).select_from(Face)) or 0)
    return faces - count_vectors(session, model_id)


@dataclass(frozen=True)
class Coverage:
    """What a model cannot match: stored faces with no vector of it, and the active cases
    none of whose faces has one."""

    faces_without_vectors: int
    unmatchable_cases: list[int]


def coverage(session: Session, model_id: str) -> Coverage:
    missing = count_faces_without_vectors(session, model_id)
    return Coverage(missing, cases_without_vectors(session, model_id) if missing else [])


def cases_without_vectors(session: Session, model_id: str) -> list[int]:
    """Active cases with faces, none of which has a vector of `model_id`: cases that model
    cannot match at all (a reindex whose detector found none of their faces again)."""
    has_face = (select(Face.id).join(CasePhoto, Face.case_photo_id == CasePhoto.id)
                .where(CasePhoto.case_id == Case.id))
    rows = session.execute(
        select(Case.id).where(Case.status == CaseStatus.ACTIVE, has_face.exists(),
                              ~matchable_case(model_id)).order_by(Case.id))
    return [int(case_id) for case_id in rows.scalars()]


@dataclass(frozen=True)
class CaseFaceCounts:
    photos: int
    faces: int  # found in those photos
    with_vectors: int  # of those faces, the ones the model has a vector of


def case_face_counts(session: Session, model_id: str, case_ids: Sequence[int]
                     ) -> dict[int, CaseFaceCounts]:
    """Photos, faces and faces with a `model_id` vector of each case, in one grouped query."""
    rows = session.execute(
        select(Case.id, func.count(distinct(CasePhoto.id)), func.count(Face.id),
               func.count(FaceVector.face_id))
        .outerjoin(CasePhoto, CasePhoto.case_id == Case.id)
        .outerjoin(Face, Face.case_photo_id == CasePhoto.id)
        .outerjoin(FaceVector, and_(FaceVector.face_id == Face.id,
                                    FaceVector.model_id == model_id))
        .where(Case.id.in_(case_ids)).group_by(Case.id))
    return {int(case_id): CaseFaceCounts(int(photos), int(faces), int(with_vectors))
            for case_id, photos, faces, with_vectors in rows}


def matchable_case(model_id: str) -> ColumnElement[bool]:
    """A case a sighting can find under `model_id`: active, with a face it has a vector of."""
    embedded_face = (select(Face.id).join(CasePhoto, Face.case_photo_id == CasePhoto.id)
                     .join(FaceVector, and_(FaceVector.face_id == Face.id,
                                            FaceVector.model_id == model_id))
                     .where(CasePhoto.case_id == Case.id))
    return and_(Case.status == CaseStatus.ACTIVE, embedded_face.exists())


def vector_models(session: Session) -> dict[str, int]:
    """How many faces each model has embedded."""
    rows = session.execute(
        select(FaceVector.model_id, func.count()).group_by(FaceVector.model_id))
    return {str(model): int(count) for model, count in rows}


def latest_sighting_vectors(
    session: Session, old_model: str, new_model: str, sample: int
) -> tuple[list[int], list[NDArray[np.float32]], list[NDArray[np.float32]]]:
    """The latest `sample` fit sighting faces that both models have embedded, newest first,
    with each model's vector of them: (face ids, old vectors, new vectors)."""
    model_ids = [old_model, new_model]
    ids = list(session.scalars(
        select(Face.id).where(Face.sighting_id.is_not(None), Face.fit)
        .join(FaceVector, FaceVector.face_id == Face.id)
        .where(FaceVector.model_id.in_(model_ids))
        .group_by(Face.id).having(func.count(FaceVector.model_id) == 2)
        .order_by(Face.id.desc()).limit(sample)))
    rows = session.scalars(select(FaceVector).where(FaceVector.face_id.in_(ids))).all()
    vectors = {(row.face_id, row.model_id): row.vector for row in rows}
    return (ids, [vectors[(i, old_model)] for i in ids], [vectors[(i, new_model)] for i in ids])


def add_missing_vectors(session: Session, model_id: str,
                        vectors: Sequence[tuple[int, ArrayLike]]) -> None:
    """As `add_vectors`, leaving a face that has a vector of `model_id` already as it is:
    several processes moving to a new model at once embed the same faces (model_follow)."""
    rows = []
    for face_id, vector in vectors:
        descriptor, dim = descriptor_to_bytes(vector)
        rows.append({"face_id": face_id, "model_id": model_id, "dim": dim,
                     "descriptor": descriptor})
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for start in range(0, len(rows), 1000):  # within either database's bound-parameter limit
        session.execute(insert(FaceVector).values(rows[start:start + 1000])
                        .on_conflict_do_nothing(index_elements=["face_id", "model_id"]))
    session.flush()


def add_vectors(session: Session, model_id: str,
                vectors: Sequence[tuple[int, ArrayLike]]) -> None:
    """Stores `(face id, descriptor)` pairs for `model_id` (a face may have one per model)."""
    rows = []
    for face_id, vector in vectors:
        descriptor, dim = descriptor_to_bytes(vector)
        rows.append(FaceVector(face_id=face_id, model_id=model_id, dim=dim,
                               descriptor=descriptor))
    session.add_all(rows)
    session.flush()
