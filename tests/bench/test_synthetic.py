"""The synthetic face model the benchmarks and the index tests draw faces from."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.bench.synthetic import FaceModel, collection, fit, planted, strangers
from matcher.index import InvalidVectors


def test_fit_recovers_the_spreads(face_model: FaceModel) -> None:
    data = collection(face_model, 6_000, seed=3)
    model = fit(data.vectors, data.owners.astype(str))
    rng = np.random.default_rng(0)
    same = collection(model, 4_000, seed=4)
    first = np.flatnonzero(np.r_[True, same.owners[1:] != same.owners[:-1]])
    pairs = first[np.diff(np.r_[first, len(same.owners)]) > 1]
    same_d = np.linalg.norm(same.vectors[pairs] - same.vectors[pairs + 1], axis=1)
    other = rng.permutation(len(same.centres))
    moved = other != np.arange(len(other))
    apart = np.linalg.norm(same.centres - same.centres[other], axis=1)[moved]
    assert 0.38 < np.median(same_d) < 0.52  # the made-up model: ~0.45 within, ~0.8 between
    assert 0.6 < np.median(apart) < 0.85
    assert np.allclose(model.mean, face_model.mean, atol=0.02)
    with pytest.raises(InvalidVectors):
        fit(data.vectors[:3], np.array(["a", "b", "c"]))


def test_collection_is_seeded_and_well_formed(face_model: FaceModel) -> None:
    a, b = collection(face_model, 1_000, seed=5), collection(face_model, 1_000, seed=5)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert len(np.unique(a.ids)) == 1_000 and a.vectors.dtype == np.float32
    counts = np.bincount(a.owners)
    assert counts.min() >= 1 and counts.max() <= 5
    queries, owners = planted(face_model, a, 10)
    assert queries.shape == (10, 128) and owners.max() < len(a.centres)
    assert strangers(face_model, 4).shape == (4, 128)
