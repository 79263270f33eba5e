"""Which owner (case, sighting...) each face belongs to, as sorted numpy arrays.

An `OwnerMap` is immutable: every change returns a new map, so a search that holds the old one
keeps a consistent view. Changes cost O(N) memory copies in numpy (milliseconds at 1M faces),
never a Python loop over the collection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from matcher.index.errors import DuplicateFaceId, FaceNotFound, InvalidVectors

Ids = NDArray[np.int64]

_EMPTY: Ids = np.empty(0, dtype=np.int64)


def as_ids(values: object, name: str = "ids") -> Ids:
    """A 1-d int64 array of non-negative ids (FAISS uses -1 for 'no result')."""
    array = np.asarray(values)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
        raise InvalidVectors(f"{name} must be a 1-d array of integers, got {array.dtype} "
                             f"of shape {array.shape}")
    if array.size and int(array.min()) < 0:
        raise InvalidVectors(f"{name} must be >= 0")
    return array.astype(np.int64, copy=False)


def sorted_unique(values: Ids) -> Ids:
    """np.unique by sorting: numpy's hash-based unique took ~2 ms for 16k owners."""
    ordered = np.sort(values)
    if ordered.size < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _ranges(starts: NDArray[np.intp], stops: NDArray[np.intp]) -> NDArray[np.intp]:
    """Concatenation of arange(start, stop) for every pair, without a Python loop."""
    lengths = stops - starts
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.intp)
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    return (offsets + np.arange(total)).astype(np.intp)


@dataclass(frozen=True)
class OwnerMap:
    ids: Ids  # face ids, sorted
    owner_of: Ids  # owner of ids[i]
    by_owner: Ids  # owners, sorted
    faces_by_owner: Ids  # face id of by_owner[i]

    @classmethod
    def empty(cls) -> OwnerMap:
        return cls(_EMPTY, _EMPTY, _EMPTY, _EMPTY)

    @classmethod
    def build(cls, ids: Ids, owners: Ids) -> OwnerMap:
        ids, owners = as_ids(ids), as_ids(owners, "owners")
        if len(ids) != len(owners):
            raise InvalidVectors(f"{len(ids)} ids but {len(owners)} owners")
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        duplicated = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
        if duplicated.size:
            raise DuplicateFaceId(f"face ids given twice: {duplicated[:5].tolist()}")
        by = np.lexsort((ids, owners))
        return cls(sorted_ids, owners[order], owners[by], ids[by])

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def owner_count(self) -> int:
        if not len(self.by_owner):
            return 0
        return int(np.count_nonzero(self.by_owner[1:] != self.by_owner[:-1])) + 1

    def contains(self, ids: Ids) -> NDArray[np.bool_]:
        pos = np.searchsorted(self.ids, ids)
        pos = np.minimum(pos, max(len(self.ids) - 1, 0))
        if not len(self.ids):
            return np.zeros(len(ids), dtype=bool)
        return np.asarray(self.ids[pos] == ids)

    def owners_of(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Owner of each id (any shape); -1 where the id is not in the map (FAISS padding)."""
        flat = ids.ravel()
        found = self.contains(flat)
        pos = np.minimum(np.searchsorted(self.ids, flat), max(len(self.ids) - 1, 0))
        owners = np.where(found, self.owner_of[pos] if len(self.ids) else -1, -1)
        return owners.reshape(ids.shape).astype(np.int64)

    def faces_of(self, owners: Ids) -> Ids:
        """Face ids of the given owners (unknown owners have none), grouped by owner."""
        owners = sorted_unique(as_ids(owners, "owners"))
        if not owners.size or not len(self.by_owner):
            return _EMPTY
        top = int(self.by_owner[-1]) + 1
        if top <= 8 * len(self.by_owner) + 1_000_000:
            # Dense owner ids (a store's): one O(N) gather beats binary searches (~5x at 1M).
            allowed = np.zeros(top, dtype=bool)
            allowed[owners[owners < top]] = True
            return self.faces_by_owner[allowed[self.by_owner]]
        starts = np.searchsorted(self.by_owner, owners, side="left")
        stops = np.searchsorted(self.by_owner, owners, side="right")
        return self.faces_by_owner[_ranges(starts, stops)]

    def with_added(self, ids: Ids, owners: Ids) -> OwnerMap:
        if len(ids) != len(owners):
            raise InvalidVectors(f"{len(ids)} ids but {len(owners)} owners")
        new = OwnerMap.build(ids, owners)  # also refuses duplicates within the batch
        clash = new.ids[self.contains(new.ids)]
        if clash.size:
            raise DuplicateFaceId(f"face ids already in the collection: {clash[:5].tolist()}")
        at = np.searchsorted(self.ids, new.ids)
        sorted_ids = np.insert(self.ids, at, new.ids)
        owner_of = np.insert(self.owner_of, at, new.owner_of)
        # Within an owner, faces need not stay sorted by id: only owner ranges are looked up.
        at = np.searchsorted(self.by_owner, new.by_owner, side="right")
        by_owner = np.insert(self.by_owner, at, new.by_owner)
        faces_by_owner = np.insert(self.faces_by_owner, at, new.faces_by_owner)
        return OwnerMap(sorted_ids, owner_of, by_owner, faces_by_owner)

    def without_faces(self, ids: Ids) -> OwnerMap:
        ids = sorted_unique(as_ids(ids))
        missing = ids[~self.contains(ids)]
        if missing.size:
            raise FaceNotFound(f"face ids not in the collection: {missing[:5].tolist()}")
        keep = np.ones(len(self.ids), dtype=bool)
        keep[np.searchsorted(self.ids, ids)] = False
        keep_by = ~np.isin(self.faces_by_owner, ids)
        return OwnerMap(
            self.ids[keep], self.owner_of[keep], self.by_owner[keep_by],
            self.faces_by_owner[keep_by],
        )

    def without_owners(self, owners: Ids) -> tuple[OwnerMap, Ids]:
        """The map without every face of these owners, and the ids of those faces."""
        owners = sorted_unique(as_ids(owners, "owners"))
        starts = np.searchsorted(self.by_owner, owners, side="left")
        stops = np.searchsorted(self.by_owner, owners, side="right")
        rows = _ranges(starts, stops)
        gone = np.sort(self.faces_by_owner[rows])
        keep_by = np.ones(len(self.by_owner), dtype=bool)
        keep_by[rows] = False
        keep = np.ones(len(self.ids), dtype=bool)
        keep[np.searchsorted(self.ids, gone)] = False
        reduced = OwnerMap(
            self.ids[keep], self.owner_of[keep], self.by_owner[keep_by],
            self.faces_by_owner[keep_by],
        )
        return reduced, gone
