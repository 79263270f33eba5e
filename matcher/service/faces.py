"""Photo bytes -> decoded image and the store's face records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from matcher.embed import FacePipeline
from matcher.embed.image import load_image
from matcher.embed.types import Face, Image
from matcher.service.runtime import Runtime
from matcher.store import NewFace


@dataclass(frozen=True)
class FaceFeedback:
    """What a sender may learn about a face: where it is, and whether it can be matched."""

    box: tuple[float, float, float, float]
    fit: bool
    reasons: tuple[str, ...]


def decode(matcher: Runtime, data: bytes) -> Image:
    """Raises matcher.embed.errors.ImageError (with a `.reason`) for unusable bytes."""
    settings = matcher.settings
    return load_image(data, max_bytes=settings.max_image_bytes,
                      max_pixels=settings.max_image_pixels)


def detect(matcher: Runtime, image: Image) -> list[Face]:
    return matcher.pipeline.process([image])[0]


def new_faces(faces: Sequence[Face], pipeline: FacePipeline) -> list[NewFace]:
    """Rows for faces `pipeline` found and embedded (tagged with its model and detector)."""
    return [
        NewFace(
            box=tuple(float(v) for v in face.box),  # type: ignore[arg-type]
            landmarks=face.landmarks, score=float(face.score),
            size_px=float(face.quality.size_px), sharpness=float(face.quality.sharpness),
            vector=face.vector, model_id=pipeline.model_id, unfit_reasons=face.quality.reasons,
            detector=pipeline.detector.name, keypoints=face.keypoints,
        )
        for face in faces
    ]


def feedback(faces: Sequence[Face]) -> list[FaceFeedback]:
    return [
        FaceFeedback(tuple(round(float(v), 1) for v in face.box),  # type: ignore[arg-type]
                     face.quality.fit, tuple(face.quality.reasons))
        for face in faces
    ]


def vectors(faces: Sequence[Face]) -> NDArray[np.float32]:
    if not faces:
        return np.empty((0, 128), dtype=np.float32)
    return np.stack([face.vector for face in faces]).astype(np.float32)
