"""The source of the face indexes: every face an index should hold, read from the store in
batches (the store is the truth; an index is rebuilt from it), and the fingerprint of that set
(is a saved index current?).

Two indexes are kept: the active cases' faces (owner: the case), and the fit faces of stored
sightings (owner: the sighting), each of one model.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from matcher.store.digest import FaceSetDigest, FaceSetSummary
from matcher.store.errors import InvalidRecord
from matcher.store.models import Case, CasePhoto, Face, FaceVector, descriptors_from_bytes
from matcher.vocabulary import CaseStatus, Category

# (face ids, owner ids, vectors): the batches FaceIndex.rebuild reads; an owner is a case or a
# sighting.
FaceRowBatch = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]
# Pairs hashed per round trip: keeps memory flat (1 MiB of pairs) whatever the collection's size.
DIGEST_BATCH = 65_536


def face_row_batches(
    session: Session, query: Any, model_id: str, batch_size: int = 10_000
) -> Iterator[FaceRowBatch]:
    """(face ids, owner ids, vectors) batches of a query selecting Face.id, an `owner` column,
    FaceVector.descriptor and FaceVector.dim; keyset pagination on the face id keeps memory
    flat whatever the collection's size."""
    after = 0
    while True:
        rows = session.execute(query.where(Face.id > after).order_by(Face.id).limit(batch_size)
                               ).all()
        if not rows:
            return
        dims = {row.dim for row in rows}
        if len(dims) != 1:
            raise InvalidRecord(f"faces of {model_id} have several dimensions: {sorted(dims)}")
        ids = np.fromiter((row.id for row in rows), dtype=np.int64, count=len(rows))
        owners = np.fromiter((row.owner for row in rows), dtype=np.int64, count=len(rows))
        yield ids, owners, descriptors_from_bytes([row.descriptor for row in rows], dims.pop())
        after = int(ids[-1])


def face_set_summary(session: Session, query: Any,
                     batch_size: int = DIGEST_BATCH) -> FaceSetSummary:
    """The fingerprint of the faces a query for `face_row_batches` selects (`face_set_pairs`
    hashed in batches)."""
    digest = FaceSetDigest()
    for ids, owners in face_set_pairs(session, query, batch_size):
        digest.update(ids, owners)
    return digest.summary()


def face_set_pairs(session: Session, query: Any, batch_size: int = DIGEST_BATCH
                   ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """The (face ids, owner ids) pairs a query for `face_row_batches` selects, in face id
    order, a batch at a time, streamed in one query (a server-side cursor on PostgreSQL).
    Ordered by the vector's face id, which the join makes the face's: SQLite then reads them in
    the order of the face_vectors index instead of sorting them (2x faster)."""
    columns = query.selected_columns
    pairs = query.with_only_columns(columns.id, columns.owner).order_by(FaceVector.face_id)
    connection = session.connection()  # Core rows: half the ORM execute's cost per row
    if connection.dialect.name == "postgresql":
        # PostgreSQL plans a cursor for its first 10% of rows (nested loops over every face);
        # this one reads them all (1M faces: 5.3 s instead of 7.3 before ANALYZE).
        connection.exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1.0")
    result = connection.execute(pairs, execution_options={"yield_per": batch_size})
    for rows in result.partitions():
        flat = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=2 * len(rows))
        yield flat[0::2], flat[1::2]


def _active_case_faces(model_id: str) -> Any:
    return (
        select(Face.id, CasePhoto.case_id.label("owner"), FaceVector.descriptor, FaceVector.dim)
        .join(FaceVector, FaceVector.face_id == Face.id)
        .join(CasePhoto, Face.case_photo_id == CasePhoto.id)
        .join(Case, CasePhoto.case_id == Case.id)
        .where(FaceVector.model_id == model_id, Case.status == CaseStatus.ACTIVE)
    )


def active_case_face_rows(
    session: Session, model_id: str, batch_size: int = 10_000
) -> Iterator[FaceRowBatch]:
    """(face ids, case ids, vectors) of every face of every active case, by face id, in batches.

    The store is the truth: this is what FaceIndex.rebuild reads at start-up. Faces of other
    models and of found or closed cases are left out.
    """
    return face_row_batches(session, _active_case_faces(model_id), model_id, batch_size)


def active_case_faces_by_category(session: Session, model_id: str) -> dict[str, int]:
    """How many faces of active cases the model has embedded, by case category."""
    faces = _active_case_faces(model_id).add_columns(Case.category).subquery()
    rows = session.execute(
        select(faces.c.category, func.count()).group_by(faces.c.category))
    return {Category(category).value: int(count) for category, count in rows}


def case_face_rows(
    session: Session, case_id: int, model_id: str, batch_size: int = 10_000
) -> Iterator[FaceRowBatch]:
    """`active_case_face_rows` of one case (nothing while the case is not active)."""
    query = _active_case_faces(model_id).where(CasePhoto.case_id == case_id)
    return face_row_batches(session, query, model_id, batch_size)


def active_case_face_summary(session: Session, model_id: str,
                             batch_size: int = DIGEST_BATCH) -> FaceSetSummary:
    """The fingerprint of what `active_case_face_rows` reads: is a saved index current?"""
    return face_set_summary(session, _active_case_faces(model_id), batch_size)


def active_case_face_pairs(session: Session, model_id: str
                           ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """`face_set_pairs` of what `active_case_face_rows` reads: what the case index should hold."""
    return face_set_pairs(session, _active_case_faces(model_id))


def _sighting_index_faces(model_id: str) -> Any:
    return (
        select(Face.id, Face.sighting_id.label("owner"), FaceVector.descriptor, FaceVector.dim)
        .join(FaceVector, FaceVector.face_id == Face.id)
        .where(FaceVector.model_id == model_id, Face.sighting_id.is_not(None), Face.fit)
    )


def sighting_face_rows(
    session: Session, model_id: str, batch_size: int = 10_000
) -> Iterator[FaceRowBatch]:
    """(face ids, sighting ids, vectors) of every fit sighting face of the model, by face id.

    What the sighting index (retro-matching, sighting links) is rebuilt from at start-up.
    Unfit faces are left out, as they are out of matching.
    """
    return face_row_batches(session, _sighting_index_faces(model_id), model_id, batch_size)


def one_sighting_face_rows(
    session: Session, sighting_id: int, model_id: str
) -> Iterator[FaceRowBatch]:
    """`sighting_face_rows` of one sighting."""
    query = _sighting_index_faces(model_id).where(Face.sighting_id == sighting_id)
    return face_row_batches(session, query, model_id)


def sighting_face_summary(session: Session, model_id: str) -> FaceSetSummary:
    """The fingerprint of what `sighting_face_rows` reads: is a saved sighting index current?"""
    return face_set_summary(session, _sighting_index_faces(model_id))


def sighting_face_pairs(session: Session, model_id: str
                        ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """`face_set_pairs` of what `sighting_face_rows` reads: what the sighting index should
    hold."""
    return face_set_pairs(session, _sighting_index_faces(model_id))
