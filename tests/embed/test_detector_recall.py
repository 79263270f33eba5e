"""YuNet (our default detector) finds the faces dlib's mmod detector finds, and the bridge
`dlib_box_from_yunet` puts its box where mmod's would be (dlib's landmark model needs that box).

dlib's mmod runs single-threaded at ~0.3-0.5 s per LFW photo here, so the sample is sized to
keep this file near a minute: full-size LFW photos, FG-NET scans reduced to a 320-px long side
(their faces stay ~100 px, above mmod's ~80-px window), and a few of those upscaled 2x for big
faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import dlib  # the reference oracle (dev extra): a missing one must fail, not skip
import numpy as np
import pytest
from PIL import Image as PILImage

from matcher.config import Settings
from matcher.embed.weights import DLIB_MMOD
from matcher.embed.yunet import YuNetDetector, dlib_box_from_yunet
from tests.data import Photo, fgnet_photos, lfw_photos, require_test_data, sample

LFW_COUNT = 64
FGNET_COUNT = 36
FGNET_UPSCALED = 3
FGNET_SIDE = 320
MIN_RECALL = 0.98
MIN_MEDIAN_IOU = 0.7


def load_rgb(photo: Photo, long_side: int | None = None, upscale: int = 1) -> np.ndarray:
    image = PILImage.open(photo.path).convert("RGB")
    if long_side is not None:
        factor = long_side / max(image.size)
        size = (round(image.width * factor), round(image.height * factor))
        image = image.resize(size, PILImage.Resampling.BILINEAR)
    if upscale != 1:
        image = image.resize((image.width * upscale, image.height * upscale))
    return np.asarray(image)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """IoU of two inclusive-pixel (left, top, right, bottom) rectangles."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return float(inter / (area - inter))


def centre_inside(inner: tuple[int, ...], outer: tuple[int, ...]) -> bool:
    cx, cy = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
    return outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]


@dataclass(frozen=True)
class Outcome:
    mmod_faces: int
    found: int  # mmod faces YuNet also found
    ious: list[float]  # IoU of mmod's box with the mapped YuNet box, per found face
    yunet_only: int  # YuNet faces with no mmod face (mmod's misses or YuNet's false alarms)
    missed: list[str]


@pytest.fixture(scope="module")
def outcome(settings: Settings) -> Outcome:
    require_test_data()
    detector = YuNetDetector.load(settings.cache_dir)
    mmod = dlib.cnn_face_detection_model_v1(str(DLIB_MMOD.path()))
    fgnet = sample(fgnet_photos(), FGNET_COUNT + FGNET_UPSCALED, seed=11)
    cases = [(p, load_rgb(p)) for p in sample(lfw_photos(), LFW_COUNT, seed=11)]
    cases += [(p, load_rgb(p, FGNET_SIDE)) for p in fgnet[:FGNET_COUNT]]
    cases += [(p, load_rgb(p, FGNET_SIDE, upscale=2)) for p in fgnet[FGNET_COUNT:]]

    found_all = detector.detect([image for _, image in cases])
    total = found = yunet_only = 0
    ious: list[float] = []
    missed: list[str] = []
    for (photo, image), detections in zip(cases, found_all, strict=True):
        theirs = [d.rect for d in mmod(image, 0)]
        theirs_boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in theirs]
        ours = [dlib_box_from_yunet(d) for d in detections]
        used: set[int] = set()
        for box in theirs_boxes:
            total += 1
            scores = [iou(box, o) for o in ours]
            hits = [
                i
                for i, o in enumerate(ours)
                if scores[i] >= 0.3 or centre_inside(box, o) or centre_inside(o, box)
            ]
            if hits:
                best = max(hits, key=lambda i: scores[i])
                used.add(best)
                found += 1
                ious.append(scores[best])
            else:
                missed.append(f"{photo.path.name} {image.shape[:2]} mmod {box}")
        yunet_only += len(ours) - len(used)
    return Outcome(total, found, ious, yunet_only, missed)


def test_yunet_finds_the_faces_mmod_finds(outcome: Outcome) -> None:
    recall = outcome.found / outcome.mmod_faces
    print(
        f"\nmmod faces {outcome.mmod_faces}, YuNet found {outcome.found} (recall {recall:.3f}); "
        f"YuNet-only faces {outcome.yunet_only}; missed: {outcome.missed}"
    )
    assert outcome.mmod_faces >= LFW_COUNT  # nearly every photo holds a face mmod sees
    assert recall >= MIN_RECALL


def test_mapped_box_is_close_to_mmods(outcome: Outcome) -> None:
    ious = np.array(outcome.ious)
    print(
        f"\nIoU(mapped YuNet box, mmod box) over {len(ious)} faces: median {np.median(ious):.3f}, "
        f"p10 {np.percentile(ious, 10):.3f}, min {ious.min():.3f}"
    )
    assert np.median(ious) >= MIN_MEDIAN_IOU
    assert np.percentile(ious, 10) >= 0.5
