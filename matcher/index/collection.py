"""`FaceIndex`: one collection of face vectors (cases, or past sightings), searched by owner.

Thread safety: searches share a readers-writer lock and run in parallel (FAISS releases the
GIL); an add or a removal takes it alone for the time of the FAISS call, so a removed owner is
gone from the very next search. A rebuild or a load builds a whole new state off the lock and
swaps it in with one assignment: readers see the old index or the new one, never a half-built one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import numpy as np
from numpy.typing import ArrayLike

from matcher.index import kinds, selfcheck
from matcher.index.errors import (
    DuplicateFaceId,
    IndexModelMismatch,
    InvalidVectors,
)
from matcher.index.filters import OwnerFilter, as_filter
from matcher.index.fusion import Fusion, OwnerHits, best, rank_owners
from matcher.index.kinds import IndexParams, Kind
from matcher.index.owners import Ids, OwnerMap, as_ids, sorted_unique
from matcher.index.rwlock import ReadWriteLock
from matcher.index.search import FaceSearch, StructureSearch, subset_search
from matcher.index.state import (
    Change,
    FaceRows,
    State,
    Vectors,
    build_state,
    check_vectors,
    concat_rows,
    drop,
    flat_params,
)

log = logging.getLogger(__name__)


# Large adds go in slices so searches interleave with them instead of waiting for the whole add.
ADD_SLICE = 65_536
# When a row has fewer than k distinct owners, the face shortlist grows by this factor.
GROWTH = 4


class FaceIndex:
    """Faces with int64 ids, each owned by an int64 owner; searched for the top-k owners."""

    def __init__(
        self, model_id: str, dim: int, params: IndexParams | None = None, fusion: Fusion = best
    ) -> None:
        self.model_id = model_id
        self.dim = dim
        self.params = params or IndexParams()
        self.fusion = fusion
        self._lock = ReadWriteLock()
        # Changes made while a rebuild runs, replayed onto the new state before it is swapped
        # in: a case removed during a rebuild must not come back with the rebuilt index.
        self._journals: list[list[Change]] = []
        empty = np.empty(0, dtype=np.int64)
        self._state = build_state(
            empty, empty, np.empty((0, dim), np.float32), dim,
            self.params if self.params.kind != "ivfpq" else flat_params(self.params),
        )

    @classmethod
    def from_rows(
        cls, model_id: str, dim: int, source: Iterable[FaceRows],
        params: IndexParams | None = None, fusion: Fusion = best,
    ) -> FaceIndex:
        index = cls(model_id, dim, params, fusion)
        index.rebuild(source)
        return index

    # -- what it holds ---------------------------------------------------------------------

    @property
    def kind(self) -> Kind:
        return self._state.kind

    @property
    def factory(self) -> str:
        return self._state.factory

    def __len__(self) -> int:
        return len(self._state.owners)

    @property
    def owner_count(self) -> int:
        return self._state.owners.owner_count

    @property
    def self_check(self) -> selfcheck.SelfCheck | None:
        """What the self-check of the serving state measured (None: exact by size, or small)."""
        found: selfcheck.SelfCheck | None = self._state.check
        return found

    @property
    def tombstone_count(self) -> int:
        return int(self._state.tombstones.size)

    @property
    def preferred_kind(self) -> Kind:
        return kinds.choose_kind(len(self), self.params)

    @property
    def needs_rebuild(self) -> bool:
        """The size has crossed a kind threshold, or tombstones exceed a tenth of the faces."""
        state = self._state
        return (kinds.choose_kind(len(state.owners), self.params)
                is not (state.planned or state.kind)
                or state.tombstones.size > 0.1 * max(len(state.owners), 1))

    def faces_of(self, owner: int) -> Ids:
        return self._state.owners.faces_of(np.array([owner], dtype=np.int64))

    # -- changes ---------------------------------------------------------------------------

    def add(self, ids: ArrayLike, owners: ArrayLike, vectors: ArrayLike) -> None:
        """Add faces. Refuses ids already present (or tombstoned) with DuplicateFaceId."""
        face_ids, owner_ids = as_ids(ids), as_ids(owners, "owners")
        array = check_vectors(vectors, self.dim)
        if not len(face_ids) == len(owner_ids) == len(array):
            raise InvalidVectors(f"{len(face_ids)} ids, {len(owner_ids)} owners, "
                                 f"{len(array)} vectors")
        OwnerMap.build(face_ids, owner_ids)  # duplicates within the batch: refuse before adding
        clash = face_ids[self._state.owners.contains(face_ids)]
        if clash.size:
            raise DuplicateFaceId(f"face ids already in the collection: {clash[:5].tolist()}")
        for start in range(0, len(face_ids), ADD_SLICE):
            stop = start + ADD_SLICE
            self._add_slice(face_ids[start:stop], owner_ids[start:stop], array[start:stop])

    def add_new(self, ids: ArrayLike, owners: ArrayLike, vectors: ArrayLike) -> tuple[int, int]:
        """Adds the faces the index does not hold: applying a change twice, or one the index
        already saw, is harmless. Faces removed since the last rebuild cannot come back before
        the next (FAISS keeps their ids): they are left out. Returns (added, left out). The
        choice and the add are one step under the write lock."""
        face_ids, owner_ids = as_ids(ids), as_ids(owners, "owners")
        array = check_vectors(vectors, self.dim)
        kinds.set_threads(self.params.threads)
        with self._lock.write():
            state = self._state
            absent = ~state.owners.contains(face_ids)
            removed = absent & np.isin(face_ids, state.tombstones)
            new = absent & ~removed
            if new.any():
                self._put(state, face_ids[new], owner_ids[new], array[new])
        return int(new.sum()), int(removed.sum())

    def _add_slice(self, ids: Ids, owners: Ids, vectors: Vectors) -> None:
        kinds.set_threads(self.params.threads)
        with self._lock.write():
            state = self._state
            updated = state.owners.with_added(ids, owners)
            if state.tombstones.size and np.isin(ids, state.tombstones).any():
                raise DuplicateFaceId("a face id removed from this index is reused before a "
                                      "rebuild; give new faces new ids")
            self._put(state, ids, owners, vectors, updated)

    def _put(self, state: State, ids: Ids, owners: Ids, vectors: Vectors,
             updated: OwnerMap | None = None) -> None:
        """Adds checked new faces to `state` (under the write lock)."""
        updated = updated or state.owners.with_added(ids, owners)
        state.index.add_with_ids(vectors, ids)
        if state.exact is not None:
            state.exact.add_with_ids(vectors, ids)
        state.owners = updated
        self._record(Change("add", ids, owners, vectors))

    def remove(self, face_ids: ArrayLike) -> None:
        """Remove faces by id; FaceNotFound if any is absent (then nothing is removed)."""
        ids = sorted_unique(as_ids(face_ids))
        with self._lock.write():
            state = self._state
            updated = state.owners.without_faces(ids)
            drop(state, ids)
            state.owners = updated
            self._record(Change("remove", ids))

    def remove_owner(self, owner: int) -> int:
        """Remove every face of an owner; returns how many (0 for an unknown owner)."""
        return self.remove_owners([owner])

    def remove_owners(self, owners: ArrayLike) -> int:
        with self._lock.write():
            state = self._state
            owner_ids = as_ids(owners, "owners")
            updated, gone = state.owners.without_owners(owner_ids)
            if gone.size:
                drop(state, gone)
                state.owners = updated
            self._record(Change("remove_owners", owner_ids))
        log.info("removed %d faces of %d owners", gone.size, np.size(owners))
        return int(gone.size)

    def rebuild(self, source: Iterable[FaceRows]) -> None:
        """Rebuild from (ids, owners, vectors) batches (the store is the truth), then swap in.

        The kind follows the new size. Searches keep running on the old index meanwhile, and
        adds and removals made meanwhile are replayed onto the new index before the swap, so
        the source only needs to be as fresh as the moment rebuild() was called.
        """
        self._rebuild(lambda: concat_rows(source, self.dim))

    def compact(self) -> None:
        """Rebuild from the index's own vectors: drops tombstones, follows the size's kind."""

        def snapshot() -> tuple[Ids, Ids, Vectors]:
            with self.read_state() as state:
                ids, owners = state.owners.ids, state.owners.owner_of  # immutable arrays
                vectors = (state.vectors.reconstruct_batch(ids) if len(ids)
                           else np.empty((0, self.dim), np.float32))
            return ids, owners, vectors

        self._rebuild(snapshot)

    def _rebuild(self, read: Callable[[], tuple[Ids, Ids, Vectors]]) -> None:
        # The journal starts before the source is read: whatever changes after that moment is
        # replayed (idempotently) onto the new state.
        journal: list[Change] = []
        with self._lock.write():
            self._journals.append(journal)
        try:
            ids, owners, vectors = read()
            state = build_state(ids, owners, vectors, self.dim, self.params)
            del vectors  # the state holds them; the self-check may copy them into a flat one
            state = selfcheck.check(state, self.params)
        except BaseException:
            with self._lock.write():
                self._journals.remove(journal)
            raise
        with self._lock.write():
            self._journals.remove(journal)
            for change in journal:
                change.replay(state)
            self._state = state

    def _record(self, change: Change) -> None:
        """Called under the write lock."""
        for journal in self._journals:
            journal.append(change)

    def swap_state(self, state: State) -> None:
        """Serve `state` from now on, as it is (changes since it was built are not replayed)."""
        with self._lock.write():
            self._state = state

    def swap(self, other: FaceIndex) -> None:
        """Serve `other`'s faces from now on (e.g. an index just loaded from disk)."""
        if (other.model_id, other.dim) != (self.model_id, self.dim):
            raise IndexModelMismatch(f"cannot swap in an index of {other.model_id}/{other.dim} "
                                    f"into {self.model_id}/{self.dim}")
        self.swap_state(other._state)

    @contextmanager
    def read_state(self) -> Iterator[State]:
        """The current state under the read lock (persistence takes a consistent snapshot)."""
        with self._lock.read():
            yield self._state

    # -- search ----------------------------------------------------------------------------

    def search(
        self, queries: ArrayLike, k: int = 10, owners: ArrayLike | OwnerFilter | None = None
    ) -> OwnerHits:
        """The k closest owners of each query (fused Euclidean distance, ascending).

        `owners` restricts the search to those owners through a FAISS IDSelector (an
        OwnerFilter keeps its selector across searches until the collection changes). For the
        default fusion (`best`) the ranking equals exact search over the kind's shortlist:
        the shortlist grows until k distinct owners are found or the candidates are exhausted,
        so an owner with many faces cannot crowd the others out.
        """
        array = check_vectors(queries, self.dim)
        if k < 1:
            raise InvalidVectors(f"k must be >= 1, got {k}")
        allowed = None if owners is None else as_filter(owners)
        kinds.set_threads(min(self.params.threads, len(array)))
        with self._lock.read():
            return self._search(self._state, array, k, allowed)

    def _search(
        self, state: State, queries: Vectors, k: int, allowed: OwnerFilter | None
    ) -> OwnerHits:
        face_search, candidates = self._face_search(state, allowed)
        q = len(queries)
        hits = OwnerHits(
            np.full((q, k), -1, dtype=np.int64), np.full((q, k), np.inf, dtype=np.float32),
            np.full((q, k), -1, dtype=np.int64), np.zeros(q, dtype=np.int64),
        )
        if candidates == 0:
            return hits
        rows = np.arange(q)
        depth = min(candidates, k * self.params.owner_fetch_factor)
        while True:
            distances, ids = face_search(queries[rows], depth)
            found = rank_owners(ids, distances, state.owners.owners_of(ids), k, self.fusion)
            hits.owners[rows], hits.distances[rows] = found.owners, found.distances
            hits.face_ids[rows], hits.found[rows] = found.face_ids, found.found
            returned = (ids >= 0).sum(axis=1)
            short = (found.found < k) & (returned >= depth)
            if depth >= candidates or not short.any():
                return hits
            rows, depth = rows[short], min(candidates, depth * GROWTH)

    def _face_search(
        self, state: State, allowed: OwnerFilter | None
    ) -> tuple[FaceSearch, int]:
        """A function (queries, depth) -> nearest faces, and how many faces it can return."""
        if allowed is None:
            sel = None if state.tomb_sel is None else state.tomb_sel[0]
            return StructureSearch(state, self.params, sel), len(state.owners)
        prepared = allowed.prepare(state.owners)
        count = int(prepared.face_ids.size)
        if not count:
            return StructureSearch(state, self.params, None), 0
        if state.kind is not Kind.FLAT and count <= self.params.filter_exact_max:
            return subset_search(state.vectors, prepared.face_ids), count
        return StructureSearch(state, self.params, prepared.selector, prepared), count


