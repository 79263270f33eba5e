"""The detector interface and the factory that picks one by name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from matcher.embed.types import Detection, Image

DETECTORS = ("yunet", "mmod")


class Detector(Protocol):
    name: str

    def detect(self, images: Sequence[Image]) -> list[list[Detection]]:
        """Faces in each image, best first, in that image's pixel coordinates."""
        ...

    def dlib_box(self, detection: Detection) -> tuple[int, int, int, int]:
        """The inclusive rectangle dlib's mmod detector would give for this face.

        dlib's 5-point landmark model was trained on mmod boxes, so every detector must say
        where that box would be.
        """
        ...


def get_detector(name: str, cache_dir: Path | None, device: str, threshold: float) -> Detector:
    if name == "yunet":
        from matcher.embed.yunet import YuNetDetector

        return YuNetDetector.load(cache_dir, device=device, score_threshold=threshold)
    if name == "mmod":
        from matcher.embed.mmod import MMODDetector

        return MMODDetector.load(cache_dir, device=device)
    raise ValueError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}")
