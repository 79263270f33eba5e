"""Typed values that flow through the face pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

# An RGB photo as decoded by matcher.embed.image: (H, W, 3) uint8, upright.
Image = NDArray[np.uint8]


@dataclass(frozen=True)
class Detection:
    """One face found by a detector, in the coordinates of the image it was given."""

    box: tuple[float, float, float, float]  # left, top, right, bottom (px)
    score: float
    # The detector's own five points when it has them (YuNet: eyes, nose tip, mouth corners).
    keypoints: NDArray[np.float32] | None = None

    def scaled(self, factor: float) -> Detection:
        """The same detection in an image `factor` times larger."""
        left, top, right, bottom = self.box
        keypoints = None if self.keypoints is None else self.keypoints * np.float32(factor)
        return Detection(
            (left * factor, top * factor, right * factor, bottom * factor), self.score, keypoints
        )


@dataclass(frozen=True)
class FaceQuality:
    score: float  # detection score
    size_px: float  # face width (box width) in source-image px
    sharpness: float  # variance of the Laplacian of the grey chip
    reasons: tuple[str, ...] = ()  # why the face is unfit for matching; empty when fit

    @property
    def fit(self) -> bool:
        return not self.reasons


@dataclass(frozen=True)
class Face:
    """A face ready for matching: where it is and what it looks like as a vector."""

    box: tuple[float, float, float, float]
    landmarks: NDArray[np.float32]  # (5, 2) points its (first) chip was cut on, source px
    score: float
    quality: FaceQuality
    vector: NDArray[np.float32] = field(repr=False)  # (dim,), not normalised for dlib
    keypoints: NDArray[np.float32] | None = field(default=None, repr=False)  # the detector's
