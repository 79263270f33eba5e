"""Within-class whitening of descriptors (WCCN), the learned post-processing tried in issue 8.

Fitted on labelled photos of several people: the spread of each person's photos around that
person's mean is made isotropic, so that directions in which the same face varies a lot (pose,
light, age) count less in the distance. Shrinkage towards the identity keeps the matrix usable
with few photos per person. Not part of the served model: the ablation measured it person-
disjoint and it did not earn its place (README, "Tried and not kept").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Whitening:
    mean: NDArray[np.float64]
    matrix: NDArray[np.float64]  # (dim, dim): x -> (x - mean) @ matrix
    people: int  # how many people with at least two photos it was fitted on

    def apply(self, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        """Whitened and scaled to unit length again (distances stay comparable)."""
        out = (np.asarray(vectors, np.float64) - self.mean) @ self.matrix
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def fit_whitening(vectors: NDArray[np.float32], identities: Sequence[str],
                  shrinkage: float) -> Whitening:
    """Within-class covariance of people with two or more photos, plus `shrinkage` x its mean
    eigenvalue on the diagonal, inverted by its square root."""
    x = np.asarray(vectors, np.float64)
    who = np.asarray(identities)
    if len(x) != len(who):
        raise ValueError(f"{len(x)} vectors for {len(who)} identities")
    centred = []
    for person in np.unique(who):
        mine = x[who == person]
        if len(mine) >= 2:
            centred.append(mine - mine.mean(axis=0))
    if not centred:
        raise ValueError("whitening needs people with at least two photos")
    within = np.concatenate(centred)
    covariance = within.T @ within / len(within)
    dim = covariance.shape[0]
    covariance += shrinkage * np.trace(covariance) / dim * np.eye(dim)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    return Whitening(x.mean(axis=0), eigenvectors / np.sqrt(eigenvalues), len(centred))
