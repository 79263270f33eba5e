"""What the store knows for certain about whose face is whose, for fitting a projection on the
service's own decisions (`matcher fit-projection --from-store`, matcher/service/store_fit.py).

Each case is one person. Its faces are those of its case photos with exactly one face (in a
photo with several, which one is the missing person is not recorded) and the sighting faces
whose latest decision for the case is `match`. A sighting face confirmed as two cases
contradicts itself and is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from matcher.store.models import (
    Case,
    CasePhoto,
    Decision,
    Face,
    FaceVector,
    Sighting,
    descriptor_from_bytes,
)
from matcher.store.vectors import FaceToEmbed
from matcher.vocabulary import Verdict

CHUNK = 500  # ids per IN list: well under every backend's limit on bound parameters


@dataclass(frozen=True)
class LabelledFace:
    face_id: int
    case_id: int
    confirmed: bool  # a sighting face an investigator confirmed as the case; else a case photo's


def labelled_faces(session: Session) -> list[LabelledFace]:
    """Every face the store can name the person of, by face id (see the module's docstring)."""
    single = (select(Face.case_photo_id).where(Face.case_photo_id.is_not(None))
              .group_by(Face.case_photo_id).having(func.count() == 1))
    case_faces = session.execute(
        select(Face.id, CasePhoto.case_id).join(CasePhoto, Face.case_photo_id == CasePhoto.id)
        .where(Face.case_photo_id.in_(single)))
    found = [LabelledFace(int(face), int(case), False) for face, case in case_faces]
    # The latest decision on a (sighting face, case) pair is the one in force.
    latest = select(func.max(Decision.id)).group_by(Decision.sighting_face_id, Decision.case_id)
    confirmed: dict[int, set[int]] = {}
    for face, case in session.execute(
            select(Decision.sighting_face_id, Decision.case_id)
            .where(Decision.id.in_(latest), Decision.verdict == Verdict.MATCH)):
        confirmed.setdefault(int(face), set()).add(int(case))
    found += [LabelledFace(face, next(iter(cases)), True)
              for face, cases in confirmed.items() if len(cases) == 1]
    return sorted(found, key=lambda labelled: labelled.face_id)


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


def stored_vectors(session: Session, model_id: str, face_ids: Iterable[int]
                   ) -> dict[int, NDArray[np.float32]]:
    """The `model_id` descriptor of each of the faces that has one, by face id."""
    found: dict[int, NDArray[np.float32]] = {}
    for chunk in _chunks(face_ids):
        for face, descriptor, dim in session.execute(
                select(FaceVector.face_id, FaceVector.descriptor, FaceVector.dim)
                .where(FaceVector.model_id == model_id, FaceVector.face_id.in_(chunk))):
            found[int(face)] = descriptor_from_bytes(descriptor, dim)
    return found


def faces_to_embed(session: Session, face_ids: Sequence[int]) -> list[FaceToEmbed]:
    """The stored photo and detection of each of the faces, by face id (what the reindex's
    `embed_photos` embeds a stored face from)."""
    found: list[FaceToEmbed] = []
    for chunk in _chunks(face_ids):
        rows = session.execute(
            select(Face.id, Face.box, Face.sighting_id, Face.score, Face.detector,
                   Face.keypoints, func.coalesce(CasePhoto.path, Sighting.path).label("path"))
            .outerjoin(CasePhoto, Face.case_photo_id == CasePhoto.id)
            .outerjoin(Sighting, Face.sighting_id == Sighting.id)
            .where(Face.id.in_(chunk)).order_by(Face.id))
        found += [FaceToEmbed(int(r.id), str(r.path), tuple(float(v) for v in r.box),  # type: ignore[arg-type]
                              None if r.sighting_id is None else int(r.sighting_id),
                              float(r.score), r.detector, r.keypoints) for r in rows]
    return found


def case_ids(session: Session) -> list[int]:
    """Every case the store holds, whatever its status (an index-only scan)."""
    return [int(case_id) for case_id in session.scalars(select(Case.id).order_by(Case.id))]
