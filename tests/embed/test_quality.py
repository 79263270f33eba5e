"""Face quality: sharpness on real face crops, and the reasons a face is unfit."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image as PILImage
from PIL import ImageFilter

from matcher.config import Settings
from matcher.embed.quality import (
    TOO_BLURRY,
    TOO_SMALL,
    assess_quality,
    explain,
    quality_from,
    sharpness,
    sharpness_batch,
)
from tests.data import lfw_photos, sample

pytestmark = pytest.mark.needs_data

FIT_BOX = (60.0, 50.0, 190.0, 200.0)  # 130 px wide, like an LFW face


@pytest.fixture(scope="module")
def crops() -> list[PILImage.Image]:
    """Chip-sized (150x150) crops around the faces of a few LFW photos."""
    chips = []
    for photo in sample(lfw_photos(), 6):
        with PILImage.open(photo.path) as image:
            chips.append(image.convert("RGB").crop((50, 50, 200, 200)))
    return chips


def blurred(chip: PILImage.Image) -> NDArray[np.uint8]:
    return np.asarray(chip.filter(ImageFilter.GaussianBlur(3)))


def test_blur_lowers_sharpness(crops: list[PILImage.Image], settings: Settings) -> None:
    for chip in crops:
        sharp, blurry = sharpness(np.asarray(chip)), sharpness(blurred(chip))
        assert sharp > 5 * blurry
        # The default threshold separates these two cases.
        assert blurry < settings.min_sharpness < sharp


def test_matches_opencv_laplacian_on_the_interior(crops: list[PILImage.Image]) -> None:
    # On a grey chip (R = G = B) our luma is exact, so cv2 is an independent oracle; its
    # reflected border is left out because we measure interior pixels only.
    grey = np.asarray(crops[0].convert("L"))
    laplacian = cv2.Laplacian(grey.astype(np.float64), cv2.CV_64F, ksize=1)
    expected = laplacian[1:-1, 1:-1].var()
    chip = np.repeat(grey[:, :, None], 3, axis=2)
    assert sharpness(chip) == pytest.approx(expected, rel=1e-4)


def test_flat_chip_has_zero_sharpness() -> None:
    assert sharpness(np.full((150, 150, 3), 97, dtype=np.uint8)) == 0.0


def test_batch_equals_single(crops: list[PILImage.Image]) -> None:
    chips = np.stack([np.asarray(c) for c in crops] + [blurred(c) for c in crops])
    batch = sharpness_batch(chips)
    assert batch.shape == (len(chips),) and batch.dtype == np.float32
    singles = [sharpness(chip) for chip in chips]
    np.testing.assert_allclose(batch, singles, rtol=1e-6)


def test_wrong_shapes_are_refused() -> None:
    with pytest.raises(ValueError):
        sharpness(np.zeros((150, 150), dtype=np.uint8))
    with pytest.raises(ValueError):
        sharpness_batch(np.zeros((2, 150, 150, 4), dtype=np.uint8))


def test_fit_face_has_no_reasons(crops: list[PILImage.Image], settings: Settings) -> None:
    quality = assess_quality(
        0.93,
        FIT_BOX,
        np.asarray(crops[0]),
        min_face_px=settings.min_face_px,
        min_sharpness=settings.min_sharpness,
    )
    assert quality.fit and quality.reasons == ()
    assert quality.size_px == 130.0 and quality.score == pytest.approx(0.93)
    assert quality.sharpness == pytest.approx(sharpness(np.asarray(crops[0])))


def test_small_face_is_too_small(crops: list[PILImage.Image]) -> None:
    quality = assess_quality(
        0.9, (10.0, 10.0, 38.0, 44.0), np.asarray(crops[0]), min_face_px=40, min_sharpness=25
    )
    assert quality.reasons == (TOO_SMALL,) and not quality.fit
    assert quality.size_px == 28.0
    assert explain(quality, min_face_px=40, min_sharpness=25) == (
        "too_small: face is 28 px wide, needs >= 40",
    )


def test_the_size_limit_is_inclusive(crops: list[PILImage.Image]) -> None:
    box = (0.0, 0.0, 40.0, 40.0)
    quality = assess_quality(0.9, box, np.asarray(crops[0]), min_face_px=40, min_sharpness=25)
    assert quality.fit


def test_blurry_and_small_face_has_both_reasons(crops: list[PILImage.Image]) -> None:
    quality = assess_quality(
        0.8, (0.0, 0.0, 20.0, 20.0), blurred(crops[0]), min_face_px=40, min_sharpness=25
    )
    assert quality.reasons == (TOO_SMALL, TOO_BLURRY)
    messages = explain(quality, min_face_px=40, min_sharpness=25)
    assert messages[1].startswith("too_blurry: sharpness ") and messages[1].endswith(" < 25")


def test_nan_measurements_are_unfit() -> None:
    quality = quality_from(0.9, (math.nan, 0.0, 100.0, 100.0), math.nan, min_face_px=40,
                           min_sharpness=25)  # fmt: skip
    assert quality.reasons == (TOO_SMALL, TOO_BLURRY)
