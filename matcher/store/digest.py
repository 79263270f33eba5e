"""The fingerprint of a set of indexed faces: how many, and a hash of their (face id, owner id)
pairs. The store computes it of what an index should hold (matcher/store/face_rows.py), the
service of what an index holds, and the two compare: a saved index is current only when they
are equal."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class FaceSetSummary:
    """Fingerprint of the faces an index should hold (a model's active case faces, or its fit
    sighting faces): how many, and the SHA-256 of every (face id, owner id) pair in face id
    order. An index built from any other set is stale, whatever ids were reused or summed."""

    count: int
    digest: str  # hex


class FaceSetDigest:
    """Builds a `FaceSetSummary` from (face ids, owner ids) batches given in ascending face id
    order, as little-endian int64 pairs: the store's rows and an index's arrays hash alike,
    however they are split into batches."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._count = 0

    def update(self, ids: ArrayLike, owners: ArrayLike) -> None:
        pairs = np.column_stack((np.asarray(ids, dtype="<i8"), np.asarray(owners, dtype="<i8")))
        self._hash.update(np.ascontiguousarray(pairs, dtype="<i8").tobytes())
        self._count += len(pairs)

    def summary(self) -> FaceSetSummary:
        return FaceSetSummary(self._count, self._hash.hexdigest())
