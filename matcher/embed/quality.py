"""Is a detected face good enough to match? Pure functions over the box and the aligned chip.

Sharpness is measured on the aligned face chip (150x150 for the dlib embedder), not on the
photo: the chip has the same size whatever the photo's resolution, so one threshold
(`Settings.min_sharpness`) means the same thing for a phone photo and a CCTV still.

`FaceQuality.reasons` holds short, stable codes (`TOO_SMALL`, `TOO_BLURRY`) for clients to
act on; `explain()` turns them into sentences for people.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from matcher.embed.types import FaceQuality

TOO_SMALL = "too_small"
TOO_BLURRY = "too_blurry"

# ITU-R BT.601 luma, the grey of cv2.cvtColor(..., COLOR_RGB2GRAY) and PIL's convert("L").
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def sharpness(chip: NDArray[np.uint8]) -> float:
    """Variance of the Laplacian of the grey (H, W, 3) chip, in grey levels squared.

    Blur removes the high frequencies the Laplacian responds to, so a lower value means a
    blurrier face. Not comparable between chips of different sizes.
    """
    if chip.ndim != 3:
        raise ValueError(f"expected an (H, W, 3) chip, got shape {chip.shape}")
    return float(sharpness_batch(chip[None])[0])


def sharpness_batch(chips: NDArray[np.uint8]) -> NDArray[np.float32]:
    """`sharpness` of each chip of an (N, H, W, 3) batch, as an (N,) float32 array."""
    if chips.ndim != 4 or chips.shape[3] != 3 or min(chips.shape[1:3]) < 3:
        raise ValueError(f"expected (N, H, W, 3) chips with H, W >= 3, got {chips.shape}")
    grey = chips.astype(np.float32) @ _LUMA  # (N, H, W)
    # 4-neighbour Laplacian (cv2.Laplacian's ksize=1 kernel) on interior pixels only, so no
    # border padding adds edges that are not in the face.
    centre = grey[:, 1:-1, 1:-1]
    laplacian = (
        grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1] + grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:] - 4 * centre
    )
    return laplacian.var(axis=(1, 2), dtype=np.float64).astype(np.float32)


def assess_quality(
    score: float,
    box: tuple[float, float, float, float],
    chip: NDArray[np.uint8],
    *,
    min_face_px: int,
    min_sharpness: float,
) -> FaceQuality:
    """Quality of one face: `box` (left, top, right, bottom) in source px, `chip` aligned."""
    return quality_from(
        score, box, sharpness(chip), min_face_px=min_face_px, min_sharpness=min_sharpness
    )


def quality_from(
    score: float,
    box: tuple[float, float, float, float],
    sharp: float,
    *,
    min_face_px: int,
    min_sharpness: float,
) -> FaceQuality:
    """`assess_quality` with the sharpness already measured (e.g. by `sharpness_batch`)."""
    left, _, right, _ = box
    size_px = float(right - left)
    reasons: list[str] = []
    # `not >=` so a NaN size or sharpness counts as unfit rather than slipping through.
    if not size_px >= min_face_px:
        reasons.append(TOO_SMALL)
    if not sharp >= min_sharpness:
        reasons.append(TOO_BLURRY)
    return FaceQuality(float(score), size_px, float(sharp), tuple(reasons))


def explain(quality: FaceQuality, *, min_face_px: int, min_sharpness: float) -> tuple[str, ...]:
    """One sentence per reason, e.g. "too_small: face is 28 px wide, needs >= 40"."""
    messages = {
        TOO_SMALL: f"face is {quality.size_px:.0f} px wide, needs >= {min_face_px}",
        TOO_BLURRY: f"sharpness {quality.sharpness:.1f} < {min_sharpness:g}",
    }
    return tuple(f"{code}: {messages.get(code, 'unfit for matching')}" for code in quality.reasons)
