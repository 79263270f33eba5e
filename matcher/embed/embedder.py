"""The embedder interface: its own alignment (landmarks -> chip) and a batched network.

An embedder owns its alignment because each network was trained on its own chips: dlib's
ResNet on 150x150 chips cut around dlib's 5 landmarks, SFace on 112x112 chips around YuNet's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from matcher.embed.chip import chip_details, extract_chips
from matcher.embed.detector import Detector
from matcher.embed.landmarks import ShapePredictor
from matcher.embed.resnet import DlibResNet, embed_chips, load_dlib_resnet
from matcher.embed.types import Detection, Image

EMBEDDERS = ("dlib",)


class Embedder(Protocol):
    model_id: str  # names the vector space: vectors of different ids are never compared
    dim: int

    def landmarks(
        self, image: Image, detections: Sequence[Detection], detector: Detector
    ) -> NDArray[np.float32]:
        """(N, 5, 2) alignment points, in the image's pixels."""
        ...

    def chips(self, image: Image, landmarks: NDArray[np.float32]) -> NDArray[np.uint8]:
        """(N, S, S, 3) aligned face chips."""
        ...

    def embed(self, chips: NDArray[np.uint8]) -> NDArray[np.float32]:
        """(N, dim) vectors, batched through the network."""
        ...


class DlibEmbedder:
    """dlib's ResNet (128-d, Euclidean, same person below 0.6) on dlib's 5-point chips."""

    model_id = "dlib-resnet-v1"
    dim = 128
    chip_size = 150
    chip_padding = 0.25

    def __init__(self, predictor: ShapePredictor, net: DlibResNet, batch_size: int) -> None:
        self._predictor = predictor
        self._net = net
        self._batch_size = batch_size

    @classmethod
    def load(cls, cache_dir: Path | None, device: str, batch_size: int) -> DlibEmbedder:
        return cls(ShapePredictor.load(cache_dir), load_dlib_resnet(cache_dir, device), batch_size)

    def landmarks(
        self, image: Image, detections: Sequence[Detection], detector: Detector
    ) -> NDArray[np.float32]:
        if not detections:
            return np.zeros((0, 5, 2), np.float32)
        boxes = np.array([detector.dlib_box(d) for d in detections], dtype=np.int64)
        return self._predictor.predict(image, boxes)

    def chips(self, image: Image, landmarks: NDArray[np.float32]) -> NDArray[np.uint8]:
        details = [chip_details(points, self.chip_size, self.chip_padding) for points in landmarks]
        if not details:
            return np.zeros((0, self.chip_size, self.chip_size, 3), np.uint8)
        return extract_chips(image, details)

    def embed(self, chips: NDArray[np.uint8]) -> NDArray[np.float32]:
        if len(chips) == 0:
            return np.zeros((0, self.dim), np.float32)
        return embed_chips(self._net, chips, self._batch_size)


def get_embedder(name: str, cache_dir: Path | None, device: str, batch_size: int) -> Embedder:
    if name == "dlib":
        return DlibEmbedder.load(cache_dir, device, batch_size)
    raise ValueError(f"unknown embedder {name!r}; known: {', '.join(EMBEDDERS)}")


def torch_device(name: str) -> torch.device:
    """The torch device for a settings value, refusing CUDA where torch sees none."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but torch sees no CUDA device")
    return device
