"""Seeded synthetic face descriptors with the structure real ones have, for benchmarks and tests.

A Gaussian is fitted to real descriptors: identity centres are drawn from the between-person
covariance, faces of one identity from the within-person covariance around its centre. Uniform
random vectors have no such structure (every point is about equally far from every other), which
makes approximate search look far worse than it is on faces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from matcher.index.errors import InvalidVectors

Matrix = NDArray[np.float64]


@dataclass(frozen=True)
class FaceModel:
    mean: NDArray[np.float64]  # (d,)
    between: Matrix  # (d, d) Cholesky-like factor of the between-person covariance
    within: Matrix  # (d, d) factor of the within-person covariance

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def save(self, path: Path) -> None:
        np.savez(path, mean=self.mean, between=self.between, within=self.within)

    @classmethod
    def load(cls, path: Path) -> FaceModel:
        with np.load(path, allow_pickle=False) as data:
            return cls(data["mean"], data["between"], data["within"])


def _factor(cov: Matrix, floor: float = 1e-8) -> Matrix:
    """A factor F with F @ F.T = cov, after clipping negative eigenvalues (noisy estimates)."""
    values, vectors = np.linalg.eigh((cov + cov.T) / 2)
    return np.asarray(vectors * np.sqrt(np.maximum(values, floor)))


def fit(vectors: NDArray[np.floating], identities: NDArray[np.str_]) -> FaceModel:
    """Fit the between- and within-person Gaussian to real descriptors labelled by identity."""
    x = np.asarray(vectors, dtype=np.float64)
    labels, codes, counts = np.unique(identities, return_inverse=True, return_counts=True)
    if len(labels) < 2 or not (counts > 1).any():
        raise InvalidVectors("fitting needs several identities, some with 2+ descriptors")
    dim = x.shape[1]
    sums = np.zeros((len(labels), dim))
    np.add.at(sums, codes, x)
    centres = sums / counts[:, None]
    residuals = x - centres[codes]
    within = residuals.T @ residuals / (len(x) - len(labels))
    # The spread of identity means also carries within noise (variance / photos per identity).
    between = np.cov(centres, rowvar=False) - within * np.mean(1.0 / counts)
    return FaceModel(x.mean(axis=0), _factor(between), _factor(within))


@dataclass(frozen=True)
class Collection:
    ids: NDArray[np.int64]
    owners: NDArray[np.int64]
    vectors: NDArray[np.float32]
    centres: NDArray[np.float32]  # (owners, d): centre of owner i


def collection(model: FaceModel, n_faces: int, seed: int = 0, max_faces: int = 5) -> Collection:
    """n_faces faces of about n_faces / 3 owners, 1..max_faces each (cases have several photos)."""
    rng = np.random.default_rng(seed)
    per_owner = rng.integers(1, max_faces + 1, size=n_faces)  # more than enough owners
    owners_needed = int(np.searchsorted(np.cumsum(per_owner), n_faces)) + 1
    owners = np.repeat(np.arange(owners_needed), per_owner[:owners_needed])[:n_faces]
    centres = identities(model, owners_needed, rng)
    vectors = np.empty((n_faces, model.dim), dtype=np.float32)
    step = 200_000  # chunks keep float64 temporaries small at 1M faces
    for start in range(0, n_faces, step):
        part = owners[start : start + step]
        vectors[start : start + step] = faces_of(model, centres[part], rng)
    ids = rng.permutation(n_faces).astype(np.int64) * 2 + 1  # ids need not be dense or sorted
    return Collection(ids, owners.astype(np.int64), vectors, centres)


def identities(model: FaceModel, count: int, rng: np.random.Generator) -> NDArray[np.float32]:
    z = rng.standard_normal((count, model.dim))
    return (model.mean + z @ model.between.T).astype(np.float32)


def faces_of(
    model: FaceModel, centres: NDArray[np.float32], rng: np.random.Generator
) -> NDArray[np.float32]:
    """One fresh face around each centre."""
    z = rng.standard_normal(centres.shape)
    return (centres + z @ model.within.T).astype(np.float32)


def planted(
    model: FaceModel, data: Collection, count: int, seed: int = 1
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Fresh faces of indexed owners (not copies of indexed faces) and who they are."""
    rng = np.random.default_rng(seed)
    owners = rng.choice(len(data.centres), size=count, replace=count > len(data.centres))
    return faces_of(model, data.centres[owners], rng), owners.astype(np.int64)


def strangers(model: FaceModel, count: int, seed: int = 2) -> NDArray[np.float32]:
    """Faces of people who are not in the collection (non-mated searches)."""
    rng = np.random.default_rng(seed)
    return faces_of(model, identities(model, count, rng), rng)
