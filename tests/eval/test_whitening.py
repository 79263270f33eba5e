"""Within-class whitening: what it does to the spread of each person's descriptors."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.eval.whitening import fit_lda, fit_whitening


def people(count: int, photos: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Descriptors that vary within a person far more along the first axes than the rest."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(count, 16))
    spread = np.linspace(3.0, 0.1, 16)
    vectors = np.concatenate([c + rng.normal(size=(photos, 16)) * spread for c in centres])
    return vectors.astype(np.float32), [f"p{n}" for n in range(count) for _ in range(photos)]


def test_within_person_spread_becomes_even() -> None:
    vectors, who = people(200, 4)
    whitening = fit_whitening(vectors, who, shrinkage=0.0)
    moved = (vectors.astype(np.float64) - whitening.mean) @ whitening.matrix
    labels = np.array(who)
    within = np.concatenate([moved[labels == p] - moved[labels == p].mean(0) for p in set(who)])
    covariance = within.T @ within / len(within)
    assert np.allclose(covariance, np.eye(16), atol=1e-6)
    assert whitening.people == 200
    out = whitening.apply(vectors)
    assert out.dtype == np.float32 and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_shrinkage_pulls_towards_plain_distances() -> None:
    vectors, who = people(50, 3, seed=1)
    weak, strong = (fit_whitening(vectors, who, s) for s in (0.0, 1000.0))
    # Distances after x -> x @ M are plain distances (up to scale) when M @ M.T is a multiple
    # of the identity: nearly so under strong shrinkage, far from it without.
    def metric(matrix: np.ndarray) -> np.ndarray:
        gram = matrix @ matrix.T
        return gram / np.trace(gram) * len(gram)

    assert np.allclose(metric(strong.matrix), np.eye(16), atol=0.02)
    assert not np.allclose(metric(weak.matrix), np.eye(16), atol=0.5)


def test_needs_people_with_two_photos() -> None:
    vectors, who = people(5, 1)
    with pytest.raises(ValueError, match="at least two photos"):
        fit_whitening(vectors, who, 0.1)
    with pytest.raises(ValueError, match="identities"):
        fit_whitening(vectors, who[:2], 0.1)


def test_lda_keeps_the_directions_that_tell_people_apart() -> None:
    """People differ along the first two axes only; each person's photos vary along all."""
    rng = np.random.default_rng(2)
    centres = np.zeros((100, 16))
    centres[:, :2] = rng.normal(size=(100, 2)) * 5.0
    vectors = np.concatenate([c + rng.normal(size=(4, 16)) for c in centres])
    who = [f"p{n}" for n in range(100) for _ in range(4)]
    lda = fit_lda(vectors.astype(np.float32), who, shrinkage=0.0, dims=2)
    assert lda.matrix.shape == (16, 2)
    # The two kept directions span the first two axes: the rest is within-person noise.
    kept = np.linalg.qr(lda.matrix)[0]
    assert np.linalg.norm(kept[:2], axis=0) == pytest.approx([1.0, 1.0], abs=0.05)
    assert lda.apply(vectors.astype(np.float32)).shape == (400, 2)
