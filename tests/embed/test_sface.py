"""SFace in torch against OpenCV's FaceRecognizerSF on real faces, and its alignment.

The reference reads an fp32 copy of the very file we load (tests/embed/sface_reference.py):
OpenCV and onnxruntime both refuse the int8 block-quantised file as shipped. The keypoints are
YuNet's on real LFW-dev and FG-NET-dev photos.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from matcher.config import Settings
from matcher.embed.errors import ModelFileError
from matcher.embed.image import load_image
from matcher.embed.sface import (
    ARCFACE_TEMPLATE,
    CHIP_SIZE,
    SFaceNet,
    align_chips,
    arcface_transform,
    convert_sface_onnx,
    embed_chips,
    load_sface,
)
from matcher.embed.weights import SFACE, YUNET, sha256_of
from matcher.embed.yunet import YuNetDetector
from tests.data import fgnet_photos, lfw_photos, require_test_data, sample
from tests.embed.sface_reference import OpenCVSFace, folded_sface_onnx

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

FEATURE_TOL = 1e-4  # max abs difference per component; the features' norms are 10-15


@pytest.fixture(scope="module")
def net(settings: Settings) -> SFaceNet:
    return load_sface(settings.cache_dir)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> OpenCVSFace:
    cv2.setNumThreads(1)
    return OpenCVSFace(folded_sface_onnx(tmp_path_factory.mktemp("sface") / "sface_fp32.onnx"))


@pytest.fixture(scope="module")
def faces(settings: Settings) -> list[tuple[np.ndarray, np.ndarray]]:
    """(RGB photo, YuNet keypoints of its best face) for 24 LFW-dev and 16 FG-NET-dev photos."""
    require_test_data()
    detector = YuNetDetector.load(settings.cache_dir)
    out = []
    for photo in sample(lfw_photos(), 24, seed=5) + sample(fgnet_photos(), 16, seed=5):
        image = load_image(photo.path.read_bytes(), max_bytes=10**8, max_pixels=10**8)
        found = detector.detect([image])[0]
        if found:
            assert found[0].keypoints is not None
            out.append((image, found[0].keypoints))
    assert len(out) >= 38
    return out


def test_the_shipped_file_is_the_one_the_port_was_checked_against() -> None:
    assert sha256_of(SFACE.path()) == SFACE.sha256


def test_features_match_opencv_on_the_same_chips(
    net: SFaceNet, reference: OpenCVSFace, faces: list[tuple[np.ndarray, np.ndarray]]
) -> None:
    chips = np.stack([reference.align(image, points) for image, points in faces])
    ours = embed_chips(net, chips)
    theirs = np.stack([reference.feature(chip) for chip in chips])
    worst = float(np.abs(ours - theirs).max())
    print(f"{len(chips)} faces: torch vs cv2.FaceRecognizerSF max abs diff {worst:.2e} "
          f"(feature norms {np.linalg.norm(theirs, axis=1).min():.1f}-"
          f"{np.linalg.norm(theirs, axis=1).max():.1f})")
    assert worst <= FEATURE_TOL


def test_chips_match_opencv_align_crop(
    reference: OpenCVSFace, faces: list[tuple[np.ndarray, np.ndarray]]
) -> None:
    ours = np.concatenate([align_chips(image, points[None]) for image, points in faces])
    theirs = np.stack([reference.align(image, points) for image, points in faces])
    diff = np.abs(ours.astype(np.int16) - theirs.astype(np.int16))
    exact = float((diff == 0).mean())
    print(f"{len(ours)} chips vs alignCrop: max diff {diff.max()}, {exact:.5%} of values exact")
    # OpenCV derives the transform in float32, we in float64: a few samples round the other way.
    assert diff.max() <= 1
    assert exact >= 0.999


def test_alignment_puts_the_keypoints_on_the_arcface_template() -> None:
    rng = np.random.default_rng(0)
    angle, scale, shift = 0.3, 2.5, np.array([400.0, 250.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    keypoints = ARCFACE_TEMPLATE @ rotation.T + shift  # a face 2.5x the chip, tilted 17 degrees
    transform = arcface_transform(keypoints + rng.normal(0, 1e-9, keypoints.shape))
    mapped = keypoints @ transform[:, :2].T + transform[:, 2]
    np.testing.assert_allclose(mapped, ARCFACE_TEMPLATE, atol=1e-6)
    # A white square under the nose tip comes out under the template's nose tip.
    image = np.zeros((800, 900, 3), np.uint8)
    nose = np.round(keypoints[2]).astype(int)
    image[nose[1] - 6 : nose[1] + 7, nose[0] - 6 : nose[0] + 7] = 255
    chip = align_chips(image, keypoints[None])[0]
    ys, xs = np.nonzero(chip[:, :, 0] > 127)
    assert abs(xs.mean() - ARCFACE_TEMPLATE[2, 0]) < 0.7
    assert abs(ys.mean() - ARCFACE_TEMPLATE[2, 1]) < 0.7


def test_our_alignment_and_network_end_to_end_match_opencv(
    net: SFaceNet, reference: OpenCVSFace, faces: list[tuple[np.ndarray, np.ndarray]]
) -> None:
    chips = np.concatenate([align_chips(image, points[None]) for image, points in faces])
    ours = embed_chips(net, chips)
    theirs = np.stack([reference.feature(reference.align(image, points))
                       for image, points in faces])
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    print(f"end to end: cosine to OpenCV min {cosine.min():.6f}")
    assert cosine.min() >= 0.999


def test_batches_and_repeats_give_the_same_vectors(
    net: SFaceNet, faces: list[tuple[np.ndarray, np.ndarray]]
) -> None:
    chips = np.concatenate([align_chips(image, points[None]) for image, points in faces[:12]])
    batched = embed_chips(net, chips, batch_size=8)
    single = np.stack([embed_chips(net, chip[None], batch_size=1)[0] for chip in chips])
    np.testing.assert_allclose(batched, single, atol=1e-4)
    np.testing.assert_array_equal(embed_chips(net, chips, batch_size=8), batched)
    views = embed_chips(net, chips, batch_size=8, flip=True)
    np.testing.assert_allclose(views[0], batched, atol=1e-4)  # a batch twice as big
    np.testing.assert_allclose(views[1], embed_chips(net, chips[:, :, ::-1].copy()), atol=1e-4)


def test_a_file_of_another_layout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="SFace"):
        convert_sface_onnx(YUNET.path().read_bytes())
    with pytest.raises(ModelFileError):
        convert_sface_onnx(b"not an onnx file")


def test_chips_have_the_network_size() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    assert align_chips(image, np.zeros((0, 5, 2), np.float32)).shape == (0, CHIP_SIZE, CHIP_SIZE, 3)
    with pytest.raises(ValueError):
        arcface_transform(np.zeros((4, 2)))
