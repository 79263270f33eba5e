"""From the nearest faces of a query to a ranking of their owners, vectorised over a batch.

A fusion turns the distances of one owner's faces into one score (lower is closer). It receives
every group's distances in ascending order, laid end to end, and where each group starts, and
returns one score per group: swap it without touching the search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Distances = NDArray[np.float32]
Fusion = Callable[[Distances, NDArray[np.intp]], Distances]


def best(distances: Distances, starts: NDArray[np.intp]) -> Distances:
    """An owner is as close as its closest face (the default: one good photo is enough)."""
    return distances[starts]


def mean_top2(distances: Distances, starts: NDArray[np.intp]) -> Distances:
    """Mean of an owner's two closest faces found (the closest alone when only one was found).

    Rewards owners matched by several photos; only faces in the searched shortlist count.
    """
    ends = np.append(starts[1:], len(distances))
    second = np.where(ends - starts > 1, distances[np.minimum(starts + 1, len(distances) - 1)],
                      distances[starts])
    return ((distances[starts] + second) / 2).astype(np.float32)


FUSIONS: dict[str, Fusion] = {"best": best, "mean_top2": mean_top2}


@dataclass(frozen=True)
class OwnerHits:
    """Top-k owners per query; rows shorter than k are padded with owner -1 and distance inf."""

    owners: NDArray[np.int64]  # (q, k)
    distances: NDArray[np.float32]  # (q, k) fused Euclidean distance, ascending
    face_ids: NDArray[np.int64]  # (q, k) the owner's closest face
    found: NDArray[np.int64]  # (q,) distinct owners among the faces searched (may exceed k)


def rank_owners(
    face_ids: NDArray[np.int64],
    distances: Distances,
    owners: NDArray[np.int64],
    k: int,
    fusion: Fusion = best,
) -> OwnerHits:
    """Group (q, K) face results by owner and keep each row's k best owners.

    `distances` are Euclidean and ascending per row; entries whose owner is -1 are ignored.
    O(q*K log(q*K)) in numpy: the shortlist, never the collection.
    """
    q = face_ids.shape[0]
    valid = owners.ravel() >= 0
    row = np.repeat(np.arange(q), face_ids.shape[1])[valid]
    own, dist, face = owners.ravel()[valid], distances.ravel()[valid], face_ids.ravel()[valid]
    order = np.lexsort((dist, own, row))
    row, own, dist, face = row[order], own[order], dist[order], face[order]
    first = np.ones(len(row), dtype=bool)
    first[1:] = (row[1:] != row[:-1]) | (own[1:] != own[:-1])
    starts = np.flatnonzero(first)
    scores = np.asarray(fusion(dist, starts), dtype=np.float32)
    g_row, g_own, g_face = row[starts], own[starts], face[starts]
    order = np.lexsort((g_own, scores, g_row))  # ties broken by owner id: deterministic
    g_row, g_own, g_face, scores = g_row[order], g_own[order], g_face[order], scores[order]
    found = np.bincount(g_row, minlength=q).astype(np.int64)
    rank = np.arange(len(g_row)) - np.searchsorted(g_row, g_row, side="left")
    keep = rank < k
    out_owner = np.full((q, k), -1, dtype=np.int64)
    out_dist = np.full((q, k), np.inf, dtype=np.float32)
    out_face = np.full((q, k), -1, dtype=np.int64)
    out_owner[g_row[keep], rank[keep]] = g_own[keep]
    out_dist[g_row[keep], rank[keep]] = scores[keep]
    out_face[g_row[keep], rank[keep]] = g_face[keep]
    return OwnerHits(out_owner, out_dist, out_face, found)
