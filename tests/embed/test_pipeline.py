"""The whole pipeline on real photos: load_pipeline -> process, against dlib end to end."""

from __future__ import annotations

import itertools
from pathlib import Path

import dlib
import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.embed.image import load_image, resize_for_detection
from matcher.embed.types import Image
from matcher.embed.weights import DLIB_RESNET, DLIB_SHAPE5
from matcher.wiring import load_pipeline
from tests.data import Photo, fgnet_photos, lfw_photos, sample


def read(photo: Photo) -> Image:
    return load_image(photo.path.read_bytes(), max_bytes=10**8, max_pixels=10**8)


@pytest.fixture(scope="module")
def dlib_models() -> tuple[dlib.shape_predictor, dlib.face_recognition_model_v1]:
    return (
        dlib.shape_predictor(str(DLIB_SHAPE5.path())),
        dlib.face_recognition_model_v1(str(DLIB_RESNET.path())),
    )


def test_every_lfw_photo_in_a_sample_has_a_face_with_a_finite_descriptor(
    pipeline: FacePipeline,
) -> None:
    photos = sample(lfw_photos(), 40, seed=1)
    results = pipeline.process([read(p) for p in photos])
    assert len(results) == len(photos)
    for photo, faces in zip(photos, results, strict=True):
        assert faces, f"no face found in {photo.path.name}"
        largest = max(faces, key=lambda f: f.box[2] - f.box[0])
        assert largest.vector.dtype == np.float32 and largest.vector.shape == (128,)
        assert np.isfinite(largest.vector).all()
        assert largest.landmarks.shape == (5, 2)
        # dlib descriptors are not normalised; their norms sit around 1.3-1.6.
        assert 0.8 < float(np.linalg.norm(largest.vector)) < 2.5


def test_same_person_is_closer_than_different_people(pipeline: FacePipeline) -> None:
    by_person: dict[str, list[Photo]] = {}
    for photo in lfw_photos():
        by_person.setdefault(photo.identity, []).append(photo)
    people = [photos[:2] for photos in list(by_person.values())[::37] if len(photos) >= 2][:12]
    results = pipeline.process([read(p) for pair in people for p in pair])
    vectors = [max(faces, key=lambda f: f.score).vector for faces in results]
    same = [np.linalg.norm(vectors[2 * i] - vectors[2 * i + 1]) for i in range(len(people))]
    different = [
        np.linalg.norm(vectors[2 * i] - vectors[2 * j])
        for i, j in itertools.combinations(range(len(people)), 2)
    ]
    assert np.median(same) < 0.6 < np.median(different)
    assert np.mean(np.array(same) < 0.6) >= 0.8
    assert np.mean(np.array(different) >= 0.6) >= 0.95


def test_given_the_same_box_vectors_match_dlib_end_to_end(
    pipeline: FacePipeline, dlib_models: tuple[dlib.shape_predictor, dlib.face_recognition_model_v1]
) -> None:
    """Our landmarks + chip + ResNet vs dlib's shape predictor + compute_face_descriptor."""
    predictor, recogniser = dlib_models
    photos = sample(lfw_photos(), 70, seed=2) + sample(fgnet_photos(), 50, seed=2)
    distances = []
    for photo in photos:
        image = read(photo)
        detections = pipeline.detect([image])[0]
        if not detections:
            continue
        ours_landmarks = pipeline.embedder.landmarks(image, detections, pipeline.detector)
        ours = pipeline.embedder.embed(pipeline.embedder.chips(image, ours_landmarks))
        for detection, vector in zip(detections, ours, strict=True):
            rect = dlib.rectangle(*pipeline.detector.dlib_box(detection))
            shape = predictor(image, rect)
            reference = np.array(recogniser.compute_face_descriptor(image, shape), np.float32)
            distances.append(float(np.linalg.norm(vector - reference)))
    assert len(distances) >= 110
    within = np.mean(np.array(distances) <= 0.01)
    print(f"{len(distances)} faces, same box: L2 to dlib max {max(distances):.2e}, "
          f"median {np.median(distances):.2e}, share <= 0.01: {within:.3f}")
    assert within >= 0.99, f"only {within:.3f} of {len(distances)} within 0.01 L2 of dlib"


def test_batch_gives_the_same_faces_as_one_by_one(pipeline: FacePipeline) -> None:
    images = [read(p) for p in sample(fgnet_photos(), 4, seed=3)]
    together = pipeline.process(images)
    for image, batched in zip(images, together, strict=True):
        alone = pipeline.process([image])[0]
        assert len(alone) == len(batched)
        for a, b in zip(alone, batched, strict=True):
            np.testing.assert_allclose(a.box, b.box, atol=1e-3)
            np.testing.assert_allclose(a.vector, b.vector, atol=1e-5)


def test_large_photo_is_detected_small_and_embedded_at_full_resolution(
    pipeline: FacePipeline,
) -> None:
    """A 3000-px photo: detection runs at the working size, coordinates come back full-size."""
    photo = sample(lfw_photos(), 1, seed=4)[0]
    small = read(photo)
    factor = 12
    big = np.asarray(
        PILImage.fromarray(small).resize((small.shape[1] * factor, small.shape[0] * factor),
                                         PILImage.Resampling.BICUBIC)
    )
    assert max(big.shape) > pipeline.config.detect_max_side
    resized, scale = resize_for_detection(big, pipeline.config.detect_max_side)
    assert max(resized.shape) == pipeline.config.detect_max_side
    by_hand = max(pipeline.detector.detect([resized])[0], key=lambda d: d.score)
    small_face = max(pipeline.process([small])[0], key=lambda f: f.score)
    big_face = max(pipeline.process([big])[0], key=lambda f: f.score)
    np.testing.assert_allclose(big_face.box, np.array(by_hand.box) * scale, rtol=1e-5)
    left, top, right, bottom = big_face.box
    assert (big_face.landmarks[:, 0] > left).all() and (big_face.landmarks[:, 0] < right).all()
    assert (big_face.landmarks[:, 1] > top).all() and (big_face.landmarks[:, 1] < bottom).all()
    # The chip is cut from the 3000-px photo, so the face looks as it does in the original.
    assert np.linalg.norm(big_face.vector - small_face.vector) < 0.15


def test_a_photo_without_faces_gives_an_empty_list(pipeline: FacePipeline) -> None:
    rows = np.linspace(0, 255, 480, dtype=np.float32)[:, None, None]
    gradient = np.broadcast_to(rows, (480, 640, 3)).astype(np.uint8)
    face_photo = read(sample(lfw_photos(), 1, seed=5)[0])
    results = pipeline.process([gradient, face_photo])
    assert results[0] == []
    assert len(results[1]) >= 1
    assert pipeline.process([]) == []


def test_a_cuda_device_without_a_gpu_is_refused_clearly(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pipeline = load_pipeline(Settings(data_dir=tmp_path, device="cuda"))
        face_photo = read(sample(lfw_photos(), 1, seed=6)[0])
        assert pipeline.process([face_photo])[0]
        return
    with pytest.raises(ValueError, match="no CUDA device"):
        load_pipeline(Settings(data_dir=tmp_path, device="cuda"))


def test_unknown_device_names_are_refused_by_settings() -> None:
    with pytest.raises(ValueError, match="device must be"):
        Settings(device="gpu")
