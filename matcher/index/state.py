"""The searchable state of a `FaceIndex` and the changes made to it.

A `State` is everything one search needs; `FaceIndex` swaps a whole new one in on a rebuild or
a load. A `Change` is an add or a removal kept while a rebuild runs, replayed onto the new
state so that nothing done meanwhile is lost or comes back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import faiss
import numpy as np
from numpy.typing import ArrayLike, NDArray

from matcher.index import kinds
from matcher.index.errors import DimensionMismatch, InvalidVectors
from matcher.index.kinds import IndexParams, Kind
from matcher.index.owners import Ids, OwnerMap, as_ids

log = logging.getLogger(__name__)

Vectors = NDArray[np.float32]
FaceRows = tuple[ArrayLike, ArrayLike, ArrayLike]  # (ids, owners, vectors) of a batch of faces


@dataclass
class State:
    """Everything one search needs; changed only under the write lock, replaced whole on swap."""

    kind: Kind
    factory: str
    index: faiss.Index  # searched; FAISS ids are face ids
    exact: faiss.Index | None  # raw vectors for re-ranking when the kind's distances are not
    owners: OwnerMap
    tombstones: Ids = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    # The selector excluding tombstones, and the selector it wraps (kept alive here).
    tomb_sel: tuple[faiss.IDSelector, faiss.IDSelector] | None = None
    # The knobs its search uses, as its self-check set them (None: the index's own params),
    # the kind the size chose (another when the check made it exact) and what it measured.
    params: IndexParams | None = None
    planned: Kind | None = None
    check: Any = None  # selfcheck.SelfCheck

    @property
    def vectors(self) -> faiss.Index:
        """The structure that reconstructs exact vectors by face id."""
        return self.exact if self.exact is not None else self.index

    def set_tombstones(self, tombstones: Ids) -> None:
        self.tombstones = tombstones
        if tombstones.size:
            inner = faiss.IDSelectorBatch(tombstones)
            self.tomb_sel = (faiss.IDSelectorNot(inner), inner)
        else:
            self.tomb_sel = None


def check_vectors(vectors: ArrayLike, dim: int) -> Vectors:
    array = np.asarray(vectors)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise InvalidVectors(f"vectors must be a 2-d float array, got {array.dtype} {array.shape}")
    if array.shape[1] != dim:
        raise DimensionMismatch(f"vectors have dimension {array.shape[1]}, the index {dim}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise InvalidVectors("vectors contain NaN or infinity")
    return array


def build_state(
    ids: Ids, owners: Ids, vectors: Vectors, dim: int, params: IndexParams
) -> State:
    """A complete, searchable state for these faces (nothing shared with any other state)."""
    kinds.set_threads(params.threads)
    owner_map = OwnerMap.build(ids, owners)
    kind = kinds.choose_kind(len(ids), params)
    factory = kinds.factory_string(kind, len(ids), dim, params)
    index = kinds.new_structure(kind, factory, dim, params)
    exact = None
    if kind is Kind.IVFPQ:
        kinds.train(index, vectors)
        exact = kinds.new_exact_store(dim)
        exact.add_with_ids(vectors, ids)
    if len(ids):
        index.add_with_ids(vectors, ids)
    log.info("built %s index (%s) of %d faces, %d owners", kind, factory, len(ids),
             owner_map.owner_count)
    return State(kind, factory, index, exact, owner_map)


def concat_rows(source: Iterable[FaceRows], dim: int) -> tuple[Ids, Ids, Vectors]:
    """All (ids, owners, vectors) batches of a source as three arrays."""
    ids, owners, vectors = [], [], []
    for batch_ids, batch_owners, batch_vectors in source:
        ids.append(as_ids(batch_ids))
        owners.append(as_ids(batch_owners, "owners"))
        vectors.append(check_vectors(batch_vectors, dim))
        if not len(ids[-1]) == len(owners[-1]) == len(vectors[-1]):
            raise InvalidVectors("a batch has different numbers of ids, owners and vectors")
    if not ids:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty((0, dim), dtype=np.float32)
    return np.concatenate(ids), np.concatenate(owners), np.concatenate(vectors)


def drop(state: State, ids: Ids) -> None:
    """Remove faces from the FAISS structures (the owner map is the caller's)."""
    if state.kind.removes_in_place:
        selector = faiss.IDSelectorBatch(ids)
        state.index.remove_ids(selector)
        if state.exact is not None:
            state.exact.remove_ids(selector)
    else:
        state.set_tombstones(np.union1d(state.tombstones, ids))


@dataclass(frozen=True)
class Change:
    """An add or a removal, kept to be replayed onto an index being rebuilt."""

    op: str  # "add", "remove" or "remove_owners"
    ids: Ids  # face ids, or owner ids for "remove_owners"
    owners: Ids | None = None
    vectors: Vectors | None = None

    def replay(self, state: State) -> None:
        """Apply to a new state that may already reflect it (the source was read meanwhile)."""
        if self.op == "add" and self.owners is not None and self.vectors is not None:
            new = ~state.owners.contains(self.ids) & ~np.isin(self.ids, state.tombstones)
            if new.any():
                state.index.add_with_ids(self.vectors[new], self.ids[new])
                if state.exact is not None:
                    state.exact.add_with_ids(self.vectors[new], self.ids[new])
                state.owners = state.owners.with_added(self.ids[new], self.owners[new])
        elif self.op == "remove":
            present = self.ids[state.owners.contains(self.ids)]
            if present.size:
                drop(state, present)
                state.owners = state.owners.without_faces(present)
        elif self.op == "remove_owners":
            state.owners, gone = state.owners.without_owners(self.ids)
            if gone.size:
                drop(state, gone)


def flat_params(params: IndexParams) -> IndexParams:
    """Params for an empty collection whose forced kind cannot start empty (IVF-PQ trains)."""
    return replace(params, kind="flat")
