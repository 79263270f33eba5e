"""Nearest faces through a `State`: its own FAISS structure (re-ranked by exact distances
where the structure's are approximate), or an exact search over a few faces."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import faiss
import numpy as np
from numpy.typing import NDArray

from matcher.index import kinds
from matcher.index.kinds import IndexParams
from matcher.index.owners import Ids
from matcher.index.state import State, Vectors

FaceSearch = Callable[[Vectors, int], tuple[NDArray[np.float32], NDArray[np.int64]]]


@dataclass(frozen=True)
class StructureSearch:
    """(queries, depth) -> nearest faces through the state's own FAISS structure."""

    state: State
    params: IndexParams
    sel: faiss.IDSelector | None
    keep_alive: object = None  # what owns the memory the selector reads (a bitmap)

    def __call__(
        self, queries: Vectors, depth: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        kind, params = self.state.kind, self.state.params or self.params
        if kind.exact_distances:
            search = kinds.search_params(kind, params, depth, self.sel)
            squared, ids = self.state.index.search(queries, depth, params=search)
            return euclid(squared), ids
        shortlist = depth * params.rerank_factor
        search = kinds.search_params(kind, params, shortlist, self.sel)
        _, ids = self.state.index.search(queries, shortlist, params=search)
        return rerank(self.state.vectors, queries, ids, depth)


def euclid(squared: NDArray[np.float32]) -> NDArray[np.float32]:
    # FAISS L2 is squared; a missing result (-1) has a huge or inf distance, kept as inf.
    return np.sqrt(np.maximum(squared, 0), dtype=np.float32)


def rerank(
    vectors: faiss.Index, queries: Vectors, ids: NDArray[np.int64], depth: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Exact distances of a (q, S) shortlist, sorted, cut to `depth` columns."""
    valid = ids >= 0
    candidates = np.zeros((*ids.shape, queries.shape[1]), dtype=np.float32)
    if valid.any():
        candidates[valid] = vectors.reconstruct_batch(ids[valid])
    diff = candidates - queries[:, None, :]
    distances = np.sqrt(np.einsum("qsd,qsd->qs", diff, diff), dtype=np.float32)
    distances[~valid] = np.inf
    order = np.argsort(distances, axis=1, kind="stable")[:, :depth]
    return (np.take_along_axis(distances, order, axis=1),
            np.where(np.take_along_axis(valid, order, axis=1),
                     np.take_along_axis(ids, order, axis=1), -1))


def subset_search(vectors: faiss.Index, face_ids: Ids) -> FaceSearch:
    """Exact search over a few faces (a tight filter), on their reconstructed vectors."""
    subset = vectors.reconstruct_batch(face_ids)

    def run(queries: Vectors, depth: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        squared, positions = faiss.knn(queries, subset, depth, metric=faiss.METRIC_L2)
        ids = np.where(positions >= 0, face_ids[np.maximum(positions, 0)], -1)
        return euclid(squared), ids

    return run
