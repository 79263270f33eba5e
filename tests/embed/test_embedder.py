"""The embedders behind Settings.embedder: model ids, normalisation, the ensemble's distance."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pydantic import ValidationError

from matcher.config import Settings
from matcher.embed.embedder import (
    DlibEmbedder,
    EnsembleEmbedder,
    MissingKeypoints,
    SFaceEmbedder,
    combine,
    get_embedder,
    l2_normalise,
)
from matcher.embed.image import load_image
from matcher.embed.pipeline import FacePipeline
from matcher.embed.types import Detection
from matcher.wiring import load_pipeline
from tests.data import lfw_photos, require_test_data, sample


@pytest.fixture(scope="module")
def ensemble_pipeline(settings: Settings) -> FacePipeline:
    """The ensemble without flip averaging, so its dlib half is dlib's descriptor, normalised."""
    return load_pipeline(settings.model_copy(update={"embedder": "dlib+sface",
                                                     "embed_flip": False}))


def test_the_default_is_the_flip_averaged_ensemble(settings: Settings,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MATCHER_EMBEDDER", "MATCHER_EMBED_FLIP", "MATCHER_ENSEMBLE_SFACE_WEIGHT"):
        monkeypatch.delenv(name, raising=False)
    default = Settings()
    assert (default.embedder, default.embed_flip, default.ensemble_sface_weight) == (
        "dlib+sface", None, 0.5)
    embedder = get_embedder(default.embedder, settings.cache_dir, "cpu", 8, default.embed_flip,
                            default.ensemble_sface_weight)
    assert embedder.model_id == "dlib-resnet-v1-flip+sface-2021dec-flip-w0.50"
    assert embedder.same_person_distance == pytest.approx(0.89, abs=0.01)
    # Flip averaging is on by default for SFace models only: plain dlib stays dlib's vectors.
    assert get_embedder("dlib", settings.cache_dir, "cpu", 8).same_person_distance == 0.6
    assert get_embedder("sface", settings.cache_dir, "cpu", 8).model_id == "sface-2021dec-flip"


def test_every_configuration_has_its_own_model_id(settings: Settings) -> None:
    """Stored vectors are tagged by model id: any change of the descriptor must change it."""
    ids = set()
    for name, flip, weight in itertools.product(("dlib", "sface", "dlib+sface"), (False, True),
                                                (0.5, 0.6)):
        if name != "dlib+sface" and weight != 0.5:
            continue
        embedder = get_embedder(name, settings.cache_dir, "cpu", 8, flip, weight)
        ids.add(embedder.model_id)
    assert len(ids) == 8
    # dlib's plain vectors keep the id they were stored under before any of this existed.
    assert get_embedder("dlib", settings.cache_dir, "cpu", 8).model_id == "dlib-resnet-v1"


def test_unknown_embedder_and_keypointless_detector_are_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="unknown embedder"):
        get_embedder("facenet", settings.cache_dir, "cpu", 8)
    with pytest.raises(ValidationError, match="needs detector 'yunet'"):
        Settings(embedder="sface", detector="mmod")
    # The model id carries two decimals of the weight: 0.504 would share 0.50's id.
    with pytest.raises(ValidationError, match="two decimals"):
        Settings(ensemble_sface_weight=0.504)
    with pytest.raises(MissingKeypoints):
        SFaceEmbedder.keypoints([Detection((0, 0, 10, 10), 0.9)])


def test_ensemble_vectors_combine_both_distances(ensemble_pipeline: FacePipeline) -> None:
    """|a - b|^2 = (1 - w) |dlib_a - dlib_b|^2 + w |sface_a - sface_b|^2, unit-length parts."""
    require_test_data()
    embedder = ensemble_pipeline.embedder
    assert isinstance(embedder, EnsembleEmbedder) and embedder.dim == 256
    images = [load_image(p.path.read_bytes(), max_bytes=10**8, max_pixels=10**8)
              for p in sample(lfw_photos(), 6, seed=7)]
    faces = [max(found, key=lambda f: f.score) for found in ensemble_pipeline.process(images)]
    vectors = np.stack([f.vector for f in faces])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    dlib_part, sface_part = vectors[:, :128], vectors[:, 128:]
    np.testing.assert_allclose(np.linalg.norm(dlib_part, axis=1), np.sqrt(0.5), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(sface_part, axis=1), np.sqrt(0.5), atol=1e-5)
    # The dlib half is dlib's own descriptor, normalised; the landmarks are dlib's.
    alone = DlibEmbedder.load(ensemble_pipeline.config.cache_dir, "cpu", 8)
    detections = ensemble_pipeline.detect(images[:1])[0]
    best = max(range(len(detections)), key=lambda i: detections[i].score)
    points = alone.landmarks(images[0], detections, ensemble_pipeline.detector)
    raw = alone.embed(alone.chips(images[0], points))
    np.testing.assert_allclose(dlib_part[0] / np.sqrt(0.5), l2_normalise(raw)[best], atol=1e-5)
    np.testing.assert_allclose(faces[0].landmarks, points[best], atol=1e-4)


def test_combine_weights_the_squared_distances() -> None:
    rng = np.random.default_rng(1)
    a, b = l2_normalise(rng.normal(size=(2, 128)).astype(np.float32))
    c, d = l2_normalise(rng.normal(size=(2, 128)).astype(np.float32))
    w = 0.3
    x, y = combine(np.stack([a, b]), np.stack([c, d]), w)
    expected = (1 - w) * np.sum((a - b) ** 2) + w * np.sum((c - d) ** 2)
    assert float(np.sum((x - y) ** 2)) == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ValueError):
        EnsembleEmbedder(None, None, 1.0)  # type: ignore[arg-type]
