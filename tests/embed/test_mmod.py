"""The torch MMOD detector against dlib's own (dlib-bin 20.0.1) on real photos.

dlib is slow here (~0.2 s per 250-px photo, ~1.5 s per 640-px one on one core), so the photo
samples are small and every dlib call happens once per module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dlib  # the reference oracle (dev extra): a missing one must fail, not skip
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image as PILImage

from matcher.config import Settings
from matcher.embed.errors import ModelFileError
from matcher.embed.mmod import (
    MMOD_CONVERTER_VERSION,
    MMODDetector,
    greedy_nms,
    parse_mmod,
    pyramid_layout,
)
from matcher.embed.types import Detection
from matcher.embed.weights import DLIB_MMOD
from tests.data import Photo, fgnet_photos, lfw_photos, sample

BOX_TOLERANCE_PX = 1.0
SCORE_TOLERANCE = 1e-3

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Comparison:
    name: str
    ours: list[Detection]
    theirs: list[tuple[Box, float]]


def _rgb(path: Path) -> NDArray[np.uint8]:
    with PILImage.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _dlib_detect(reference: object, image: NDArray[np.uint8]) -> list[tuple[Box, float]]:
    found = reference(image, 0)  # type: ignore[operator]
    return [
        ((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), d.confidence)
        for d in found
    ]


def _match(comparison: Comparison) -> tuple[float, float]:
    """Asserts every dlib box has one of ours within tolerance; returns (box, score) max diffs.

    Boxes dlib kept must be ours too; a box only one side has must score within the tolerance
    of the 0 threshold (a float rounding flip), never a real face.
    """
    box_diff = score_diff = 0.0
    unmatched = list(comparison.ours)
    for box, score in comparison.theirs:
        diffs = [max(abs(a - b) for a, b in zip(d.box, box, strict=True)) for d in unmatched]
        assert diffs, f"{comparison.name}: dlib box {box} ({score:.4f}) missing from ours"
        best = int(np.argmin(diffs))
        if diffs[best] > BOX_TOLERANCE_PX:
            assert score < SCORE_TOLERANCE, (
                f"{comparison.name}: dlib box {box} ({score:.4f}) has no match; ours: "
                f"{[(d.box, round(d.score, 4)) for d in comparison.ours]}"
            )
            continue
        match = unmatched.pop(best)
        box_diff = max(box_diff, diffs[best])
        score_diff = max(score_diff, abs(match.score - score))
        assert abs(match.score - score) <= SCORE_TOLERANCE, comparison.name
    extra = [(d.box, d.score) for d in unmatched if d.score >= SCORE_TOLERANCE]
    assert not extra, f"{comparison.name}: boxes dlib does not find: {extra}"
    return box_diff, score_diff


@pytest.fixture(scope="module")
def detector(settings: Settings) -> MMODDetector:
    return MMODDetector.load(settings.cache_dir)


@pytest.fixture(scope="module")
def reference() -> object:
    return dlib.cnn_face_detection_model_v1(str(DLIB_MMOD.path()))


def _compare_photos(
    detector: MMODDetector, reference: object, photos: list[Photo]
) -> list[Comparison]:
    images = [_rgb(photo.path) for photo in photos]
    ours = detector.detect(images)  # one call: same-size photos share a batch
    return [
        Comparison(photo.path.name, found, _dlib_detect(reference, image))
        for photo, image, found in zip(photos, images, ours, strict=True)
    ]


@pytest.fixture(scope="module")
def lfw_comparisons(detector: MMODDetector, reference: object) -> list[Comparison]:
    return _compare_photos(detector, reference, sample(lfw_photos(), 40, seed=1))


@pytest.fixture(scope="module")
def fgnet_comparisons(detector: MMODDetector, reference: object) -> list[Comparison]:
    return _compare_photos(detector, reference, sample(fgnet_photos(), 15, seed=1))


def test_parse_reads_the_whole_file_and_folds_batch_norm() -> None:
    arrays = parse_mmod(DLIB_MMOD.path().read_bytes())
    assert arrays["conv0.weight"].shape == (16, 3, 5, 5)
    assert arrays["conv6.weight"].shape == (1, 45, 9, 9)
    assert tuple(arrays["window"]) == (80, 80)
    assert arrays["nms"][0] == pytest.approx(0.338, abs=1e-3)
    np.testing.assert_allclose(arrays["input_mean"], [122.782, 117.001, 104.298], atol=1e-4)
    # BN over roughly unit-scale conv outputs folds into large per-channel gains.
    assert all(np.all(arrays[f"affine{i}.scale"] > 0) for i in range(6))


def test_parse_rejects_a_truncated_file() -> None:
    data = DLIB_MMOD.path().read_bytes()
    with pytest.raises(ModelFileError):
        parse_mmod(data[: len(data) // 2])
    with pytest.raises(ModelFileError):
        parse_mmod(data + b"\x00")


def test_load_uses_the_weight_cache(settings: Settings, detector: MMODDetector) -> None:
    cached = list(
        settings.cache_dir.glob(f"mmod_human_face_detector-*-{MMOD_CONVERTER_VERSION}.npz")
    )
    assert len(cached) == 1
    again = MMODDetector.load(settings.cache_dir)
    for ours, theirs in zip(
        detector.net.state_dict().values(), again.net.state_dict().values(), strict=True
    ):
        assert bool((ours == theirs).all())


def test_pyramid_layout_of_a_square_photo() -> None:
    layout = pyramid_layout(250, 250)
    assert layout.rects[0] == (11, 11, 260, 260)  # outer padding 11, then the photo
    heights = [r[3] - r[1] + 1 for r in layout.rects]
    assert heights[:3] == [250, 208, 173]  # floor(5/6 * previous)
    assert heights[-1] >= 5 and heights[-1] * 5 // 6 < 5
    for a, b in zip(layout.rects, layout.rects[1:], strict=False):  # tiles never overlap
        assert max(a[0], b[0]) > min(a[2], b[2]) or max(a[1], b[1]) > min(a[3], b[3])
    assert all(r[2] < layout.width - 10 and r[3] < layout.height - 10 for r in layout.rects)


def test_lfw_matches_dlib(lfw_comparisons: list[Comparison]) -> None:
    diffs = [_match(c) for c in lfw_comparisons]
    found = sum(bool(c.theirs) for c in lfw_comparisons)
    assert found >= 35  # LFW photos are centred faces: dlib finds nearly all
    print(  # noqa: T201 - figures for the report (pytest -s)
        f"\nLFW {len(diffs)} photos, {found} with faces: max box diff "
        f"{max(d[0] for d in diffs)} px, max score diff {max(d[1] for d in diffs):.2e}"
    )


def test_fgnet_matches_dlib(fgnet_comparisons: list[Comparison]) -> None:
    diffs = [_match(c) for c in fgnet_comparisons]
    found = sum(bool(c.theirs) for c in fgnet_comparisons)
    assert found >= 10
    print(  # noqa: T201
        f"\nFG-NET {len(diffs)} photos, {found} with faces: max box diff "
        f"{max(d[0] for d in diffs)} px, max score diff {max(d[1] for d in diffs):.2e}"
    )


def test_four_faces_in_a_mosaic(detector: MMODDetector, reference: object) -> None:
    tiles = [_rgb(photo.path) for photo in sample(lfw_photos(), 4, seed=3)]
    mosaic = np.concatenate(
        [np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)], axis=0
    )
    comparison = Comparison("mosaic", detector.detect([mosaic])[0], _dlib_detect(reference, mosaic))
    _match(comparison)
    assert len(comparison.theirs) == 4
    centres = sorted(
        ((d.box[0] + d.box[2]) / 2 // 250, (d.box[1] + d.box[3]) / 2 // 250)
        for d in comparison.ours
        if d.score > 0
    )
    assert centres == [(0, 0), (0, 1), (1, 0), (1, 1)]  # one face per tile


def test_no_face_in_a_gradient(detector: MMODDetector, reference: object) -> None:
    ramp = np.linspace(0, 255, 320, dtype=np.float64)
    gradient = np.stack(
        [
            np.add.outer(ramp[:240] * 0.5, ramp * 0.5),
            np.tile(ramp, (240, 1)),
            np.full((240, 320), 90),
        ],
        axis=2,
    ).astype(np.uint8)
    assert _dlib_detect(reference, gradient) == []
    assert detector.detect([gradient]) == [[]]


def test_batches_and_grey_images_give_the_same_faces(detector: MMODDetector) -> None:
    lfw = [_rgb(p.path) for p in sample(lfw_photos(), 2, seed=5)]
    with PILImage.open(sample(fgnet_photos(), 1, seed=5)[0].path) as image:
        grey = np.asarray(image.convert("L"))
    grey_rgb = np.repeat(grey[:, :, None], 3, axis=2)
    batch = detector.detect([lfw[0], grey, lfw[1]])
    one_by_one = [detector.detect([image])[0] for image in (lfw[0], grey_rgb, lfw[1])]
    assert [[(d.box, round(d.score, 4)) for d in found] for found in batch] == [
        [(d.box, round(d.score, 4)) for d in found] for found in one_by_one
    ]
    assert all(batch)


def test_images_too_small_for_the_net_have_no_faces(detector: MMODDetector) -> None:
    tiny = [np.zeros(shape, np.uint8) for shape in [(3, 3, 3), (4, 300, 3), (40, 40, 3)]]
    assert detector.detect(tiny) == [[], [], []]
    assert detector.detect([]) == []


def test_greedy_nms_uses_dlibs_bounding_box_ratio() -> None:
    # 10x10 boxes offset by (4, 4): intersection 36, union 164 (IoU 0.22), but dlib divides by
    # the 14x14 bounding box (0.18), so at 0.2 both survive.
    pair = np.array([[0, 0, 9, 9], [4, 4, 13, 13]], dtype=np.int64)
    assert greedy_nms(pair, 0.2, 1.0) == [0, 1]
    assert greedy_nms(pair, 0.18, 1.0) == [0]
    # Greedy: the third box overlaps only the second, which the first already removed.
    chain = np.array([[0, 0, 9, 9], [3, 0, 12, 9], [7, 0, 16, 9]], dtype=np.int64)
    assert greedy_nms(chain, 0.338, 1.0) == [0, 2]
    contained = np.array([[0, 0, 19, 19], [2, 2, 5, 5]], dtype=np.int64)
    assert greedy_nms(contained, 0.338, 1.0) == [0, 1]  # percent covered 1.0 never fires
    assert greedy_nms(contained, 0.338, 0.5) == [0]
