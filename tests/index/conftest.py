"""Seeded synthetic faces for the index tests, and an exact numpy oracle.

The face model here is made up (no photos needed): identity centres spread like dlib's
(different people ~0.8 apart, norms ~1.4), faces of one identity ~0.45 from each other, on an
anisotropic spectrum so that the data has directions of large and small spread, as real
descriptors do. scripts/bench_index.py fits the same kind of model to real descriptors.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from matcher.bench.synthetic import Collection, FaceModel, collection
from matcher.index import FaceIndex, IndexParams

DIM = 128
MODEL_ID = "test-model"


def _factor(rng: np.random.Generator, distance: float) -> NDArray[np.float64]:
    """A covariance factor whose two-sample distance is about `distance`."""
    basis, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    spectrum = 1.0 / np.sqrt(np.arange(1, DIM + 1))
    spectrum *= distance / np.sqrt(2 * np.sum(spectrum**2))
    return np.asarray(basis * spectrum)


@pytest.fixture(scope="session")
def face_model() -> FaceModel:
    rng = np.random.default_rng(42)
    mean = rng.standard_normal(DIM)
    mean *= 1.4 / np.linalg.norm(mean)
    return FaceModel(mean, _factor(rng, 0.7), _factor(rng, 0.45))


@pytest.fixture(scope="session")
def faces(face_model: FaceModel) -> Collection:
    """2,000 faces of ~670 owners."""
    return collection(face_model, 2_000, seed=7)


@pytest.fixture(scope="session")
def many_faces(face_model: FaceModel) -> Collection:
    """20,000 faces of ~6,700 owners (approximate kinds against exact)."""
    return collection(face_model, 20_000, seed=11)


def params(kind: str = "flat", **overrides: float) -> IndexParams:
    """Small-collection knobs; no self-check (tests/index/test_selfcheck.py turns it on): the
    other tests measure the knobs they set."""
    base = {"threads": 2, "ivf_nlist": 64, "pq_m": 16, "filter_exact_max": 100,
            "recall_target": 0.0}
    base.update(overrides)
    return IndexParams(kind=kind, **base)  # type: ignore[arg-type]


def make_index(data: Collection, kind: str = "flat", **overrides: float) -> FaceIndex:
    return FaceIndex.from_rows(MODEL_ID, DIM, [(data.ids, data.owners, data.vectors)],
                               params(kind, **overrides))


def exact_owner_ranking(
    data: Collection, queries: NDArray[np.float32], k: int, allowed: NDArray[np.int64] | None = None
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The oracle: every face's distance, each owner's best, the k best owners (numpy only)."""
    keep = np.ones(len(data.ids), bool) if allowed is None else np.isin(data.owners, allowed)
    vectors, owners = data.vectors[keep].astype(np.float64), data.owners[keep]
    distances = np.linalg.norm(queries[:, None, :].astype(np.float64) - vectors[None], axis=2)
    n_owners = int(data.owners.max()) + 1
    best = np.full((len(queries), n_owners), np.inf)
    for row in range(len(queries)):
        np.minimum.at(best[row], owners, distances[row])
    order = np.argsort(best, axis=1, kind="stable")[:, :k]
    return order.astype(np.int64), np.take_along_axis(best, order, axis=1).astype(np.float32)
