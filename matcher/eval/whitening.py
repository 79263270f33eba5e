"""Within-class whitening (WCCN) and LDA of descriptors, learned post-processing tried in issue 8.

Fitted on labelled photos of several people: the spread of each person's photos around that
person's mean is made isotropic, so that directions in which the same face varies a lot (pose,
light, age) count less in the distance. Shrinkage towards the identity keeps the matrix usable
with few photos per person. LDA goes one step further: after that whitening it keeps the
directions in which people's means differ most. Neither is part of the served model: the
ablation measured both person-disjoint and they did not earn a place (docs/accuracy-2026-11.md,
"Tried and not kept").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Whitening:
    mean: NDArray[np.float64]
    matrix: NDArray[np.float64]  # (dim, out): x -> (x - mean) @ matrix
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
    people = [x[who == person] for person in np.unique(who)]
    people = [mine for mine in people if len(mine) >= 2]
    if not people:
        raise ValueError("whitening needs people with at least two photos")
    within = np.concatenate([mine - mine.mean(axis=0) for mine in people])
    covariance = within.T @ within / len(within)
    dim = covariance.shape[0]
    covariance += shrinkage * np.trace(covariance) / dim * np.eye(dim)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    return Whitening(x.mean(axis=0), eigenvectors / np.sqrt(eigenvalues), len(people))


def fit_lda(vectors: NDArray[np.float32], identities: Sequence[str], shrinkage: float,
            dims: int) -> Whitening:
    """Whitening as above, then the `dims` directions of the largest spread between the means
    of the people with two or more photos (each weighted by its photos)."""
    whitening = fit_whitening(vectors, identities, shrinkage)
    x = np.asarray(vectors, np.float64)
    who = np.asarray(identities)
    means = [(x[who == p].mean(axis=0), (who == p).sum()) for p in np.unique(who)]
    spread = np.stack([(m - whitening.mean) * np.sqrt(n) for m, n in means if n >= 2])
    between = (spread @ whitening.matrix).T @ (spread @ whitening.matrix)
    _, directions = np.linalg.eigh(between)  # ascending: the last are the widest
    return Whitening(whitening.mean, whitening.matrix @ directions[:, ::-1][:, :dims],
                     whitening.people)
