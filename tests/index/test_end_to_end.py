"""Real descriptors from the face pipeline, searched by owner in the index."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from matcher.config import Settings
from matcher.embed.image import load_image
from matcher.index import FaceIndex, load, save
from matcher.wiring import index_params, load_pipeline
from tests.data import Photo, lfw_photos, require_test_data

PEOPLE = 30
DISTRACTORS = 20


def _embed(settings: Settings, photos: list[Photo]) -> tuple[str, np.ndarray]:
    pipeline = load_pipeline(settings)
    images = [load_image(p.path.read_bytes(), max_bytes=settings.max_image_bytes,
                         max_pixels=settings.max_image_pixels) for p in photos]
    vectors = []
    for faces in pipeline.process(images):
        assert faces, "LFW photos have a face"
        vectors.append(max(faces, key=lambda f: f.box[2] - f.box[0]).vector)  # the central one
    return pipeline.model_id, np.stack(vectors)


@pytest.mark.needs_data
def test_second_photo_finds_the_person_of_the_first(settings: Settings, tmp_path: Path) -> None:
    require_test_data()
    by_person: dict[str, list[Photo]] = defaultdict(list)
    for photo in lfw_photos():
        by_person[photo.identity].append(photo)
    pairs = [v[:2] for v in by_person.values() if len(v) >= 2]
    singles = [v[0] for v in by_person.values() if len(v) == 1]
    step = max(1, len(pairs) // PEOPLE)
    pairs = pairs[::step][:PEOPLE]
    singles = singles[:DISTRACTORS]
    enrolled = [p[0] for p in pairs] + singles
    probes = [p[1] for p in pairs]
    model_id, vectors = _embed(settings, enrolled + probes)
    enrolled_vectors, probe_vectors = vectors[: len(enrolled)], vectors[len(enrolled) :]

    index = FaceIndex(model_id, 128, index_params(settings))
    owners = np.arange(len(enrolled))  # person i owns enrolled photo i; probes are 0..PEOPLE-1
    index.add(np.arange(len(enrolled)) + 100, owners, enrolled_vectors)
    hits = index.search(probe_vectors, k=5)
    rank1 = float(np.mean(hits.owners[:, 0] == np.arange(len(probes))))
    assert rank1 >= 0.8, f"rank-1 {rank1:.2f} on {len(probes)} LFW people"
    # same-person distances sit mostly under dlib's 0.6 rule
    assert np.mean(hits.distances[:, 0] < 0.6) >= 0.8

    save(index, tmp_path)
    reloaded = load(tmp_path, model_id, 128)
    np.testing.assert_array_equal(reloaded.search(probe_vectors, k=5).owners, hits.owners)
    index.remove_owner(0)
    assert 0 not in index.search(probe_vectors[:1], k=5).owners
