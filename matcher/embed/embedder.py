"""The embedder interface: its own alignment (detections -> chips) and batched networks.

An embedder owns its alignment because each network was trained on its own chips: dlib's
ResNet on 150x150 chips cut around dlib's 5 landmarks, SFace on 112x112 chips around YuNet's
5 keypoints. An ensemble cuts both and concatenates the weighted, L2-normalised descriptors, so
the one Euclidean distance the index computes combines the two networks' distances.

`model_id` names the vector space: it changes whenever the descriptor changes (network,
flip averaging, ensemble weight, a learned projection: matcher.embed.projection), so vectors of
different ids are never compared and stored vectors of an old id are known to need reindexing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from matcher.embed import sface
from matcher.embed.chip import chip_details, extract_chips
from matcher.embed.detector import Detector
from matcher.embed.errors import EmbedError
from matcher.embed.landmarks import ShapePredictor
from matcher.embed.resnet import DlibResNet, embed_chips, load_dlib_resnet
from matcher.embed.types import Detection, Image

EMBEDDERS = ("dlib", "sface", "dlib+sface")

# Same-person distances of the unit-length descriptors: the distance at which different people
# match as often as dlib's raw vectors do at dlib's 0.6 (false-match rate 1.35e-2 over the
# 292,893 pairs of different people of the dev cross-age protocol, `matcher calibrate`'s pairs).
# Measured: dlib normalised 0.418, with flip 0.411; SFace 1.187, with flip 1.186 (OpenCV
# publishes 1.128 for SFace); the 1:1 ensemble 0.905, with flip 0.902.
DLIB_RAW_SAME_PERSON = 0.6
DLIB_UNIT_SAME_PERSON = 0.41
SFACE_SAME_PERSON = 1.19


class MissingKeypoints(EmbedError):
    """An embedder that aligns on detector keypoints got a detection without them."""


@dataclass(frozen=True)
class AlignedFaces:
    """One image's faces, ready for the embedder's network(s)."""

    landmarks: NDArray[np.float32]  # (N, 5, 2) the points reported with each face, image px
    # One (N, S, S, 3) uint8 batch per network; quality measures sharpness on chips[0].
    chips: tuple[NDArray[np.uint8], ...]

    def __len__(self) -> int:
        return len(self.landmarks)


class Embedder(Protocol):
    model_id: str  # names the vector space: vectors of different ids are never compared
    dim: int
    # The default match threshold (Settings.match_threshold None): see the table above.
    same_person_distance: float

    def align(self, image: Image, detections: Sequence[Detection], detector: Detector
              ) -> AlignedFaces:
        """Landmarks and chips of each detection, cut from the full-resolution image."""
        ...

    def embed_aligned(self, faces: Sequence[AlignedFaces]) -> NDArray[np.float32]:
        """(total faces, dim) vectors, one network pass per batch of all images' faces."""
        ...


def l2_normalise(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """Rows scaled to unit length: the one place descriptors are normalised."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, np.float32(1e-12))).astype(np.float32)


def average_views(views: NDArray[np.float32]) -> NDArray[np.float32]:
    """(k, N, d) descriptors of k views of the same faces (a chip and its mirror image) ->
    (N, d): the mean of the unit-length views, scaled to unit length."""
    return l2_normalise(l2_normalise(views).sum(axis=0))


def _stack(faces: Sequence[AlignedFaces], part: int, size: int) -> NDArray[np.uint8]:
    batches = [f.chips[part] for f in faces if len(f)]
    return np.concatenate(batches) if batches else np.zeros((0, size, size, 3), np.uint8)


class DlibEmbedder:
    """dlib's ResNet (128-d, Euclidean, same person below 0.6) on dlib's 5-point chips.

    Raw vectors, exactly dlib's; with `flip`, the normalised mean of the chip's and its mirror
    image's descriptors (unit length: dlib's 0.6 rule no longer applies).
    """

    dim = 128
    chip_size = 150
    chip_padding = 0.25

    def __init__(self, predictor: ShapePredictor, net: DlibResNet, batch_size: int,
                 flip: bool = False) -> None:
        self._predictor = predictor
        self._net = net
        self._batch_size = batch_size
        self.flip = flip
        self.model_id = "dlib-resnet-v1-flip" if flip else "dlib-resnet-v1"
        self.same_person_distance = DLIB_UNIT_SAME_PERSON if flip else DLIB_RAW_SAME_PERSON

    @classmethod
    def load(cls, cache_dir: Path | None, device: str, batch_size: int, flip: bool = False
             ) -> DlibEmbedder:
        return cls(ShapePredictor.load(cache_dir), load_dlib_resnet(cache_dir, device),
                   batch_size, flip)

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
        if not self.flip:
            return embed_chips(self._net, chips, self._batch_size)
        both = embed_chips(self._net, np.concatenate([chips, chips[:, :, ::-1]]),
                           self._batch_size)
        return average_views(both.reshape(2, len(chips), self.dim))

    def align(self, image: Image, detections: Sequence[Detection], detector: Detector
              ) -> AlignedFaces:
        landmarks = self.landmarks(image, detections, detector)
        return AlignedFaces(landmarks, (self.chips(image, landmarks),))

    def embed_aligned(self, faces: Sequence[AlignedFaces]) -> NDArray[np.float32]:
        return self.embed(_stack(faces, 0, self.chip_size))


class SFaceEmbedder:
    """SFace (OpenCV zoo 2021dec) on ArcFace-aligned 112x112 chips of YuNet's keypoints.

    Unit-length vectors: the Euclidean distance is sqrt(2 - 2 cos), the cosine rule SFace was
    published with. With `flip`, the normalised mean of the chip's and its mirror image's.
    """

    dim = sface.DESCRIPTOR_DIM
    chip_size = sface.CHIP_SIZE
    same_person_distance = SFACE_SAME_PERSON

    def __init__(self, net: sface.SFaceNet, batch_size: int, flip: bool = False) -> None:
        self._net = net
        self._batch_size = batch_size
        self.flip = flip
        self.model_id = "sface-2021dec-flip" if flip else "sface-2021dec"

    @classmethod
    def load(cls, cache_dir: Path | None, device: str, batch_size: int, flip: bool = False
             ) -> SFaceEmbedder:
        return cls(sface.load_sface(cache_dir, device), batch_size, flip)

    @staticmethod
    def keypoints(detections: Sequence[Detection]) -> NDArray[np.float32]:
        if any(d.keypoints is None for d in detections):
            raise MissingKeypoints("SFace aligns on the detector's five keypoints; this detector "
                                   "gives none (use MATCHER_DETECTOR=yunet)")
        points = [np.asarray(d.keypoints, np.float32).reshape(5, 2) for d in detections]
        return np.stack(points) if points else np.zeros((0, 5, 2), np.float32)

    def align(self, image: Image, detections: Sequence[Detection], detector: Detector
              ) -> AlignedFaces:
        keypoints = self.keypoints(detections)
        return AlignedFaces(keypoints, (sface.align_chips(image, keypoints),))

    def embed(self, chips: NDArray[np.uint8]) -> NDArray[np.float32]:
        if len(chips) == 0:
            return np.zeros((0, self.dim), np.float32)
        raw = sface.embed_chips(self._net, chips, self._batch_size, flip=self.flip)
        return average_views(raw) if self.flip else l2_normalise(raw)

    def embed_aligned(self, faces: Sequence[AlignedFaces]) -> NDArray[np.float32]:
        return self.embed(_stack(faces, 0, self.chip_size))


class EnsembleEmbedder:
    """dlib and SFace side by side: [sqrt(1 - w) * dlib, sqrt(w) * sface], both unit length.

    The squared distance of two such vectors is (1 - w) * d_dlib^2 + w * d_sface^2 on the
    normalised descriptors, and the vector itself has unit length. w = 0.5 weighs both alike.
    Reported landmarks and the quality chip are dlib's (the sharpness threshold was set on
    dlib's chips).
    """

    def __init__(self, dlib: DlibEmbedder, sface_part: SFaceEmbedder, sface_weight: float
                 ) -> None:
        if not 0.0 < sface_weight < 1.0:
            raise ValueError(f"the SFace weight must lie in (0, 1), got {sface_weight}")
        self.dlib, self.sface = dlib, sface_part
        self.sface_weight = sface_weight
        self.dim = dlib.dim + sface_part.dim
        self.model_id = f"{dlib.model_id}+{sface_part.model_id}-w{sface_weight:.2f}"
        # Combined like the squared distances: 0.89 at w = 0.5, where 0.90 was measured.
        self.same_person_distance = round(math.sqrt(
            (1.0 - sface_weight) * DLIB_UNIT_SAME_PERSON**2 + sface_weight * SFACE_SAME_PERSON**2
        ), 3)

    def align(self, image: Image, detections: Sequence[Detection], detector: Detector
              ) -> AlignedFaces:
        dlib_faces = self.dlib.align(image, detections, detector)
        sface_faces = self.sface.align(image, detections, detector)
        return AlignedFaces(dlib_faces.landmarks, dlib_faces.chips + sface_faces.chips)

    def embed_aligned(self, faces: Sequence[AlignedFaces]) -> NDArray[np.float32]:
        first = l2_normalise(self.dlib.embed(_stack(faces, 0, self.dlib.chip_size)))
        second = self.sface.embed(_stack(faces, 1, self.sface.chip_size))
        return combine(first, second, self.sface_weight)


def combine(dlib_vectors: NDArray[np.float32], sface_vectors: NDArray[np.float32],
            sface_weight: float) -> NDArray[np.float32]:
    """The ensemble vector of unit-length parts: [sqrt(1 - w) * a, sqrt(w) * b]."""
    return np.concatenate(
        [math.sqrt(1.0 - sface_weight) * dlib_vectors, math.sqrt(sface_weight) * sface_vectors],
        axis=1,
    ).astype(np.float32)


def get_embedder(name: str, cache_dir: Path | None, device: str, batch_size: int,
                 flip: bool | None = None, sface_weight: float = 0.5) -> Embedder:
    """The named embedder, loaded. `flip` None: on for sface and dlib+sface, where it helped
    on the cross-age protocol, off for dlib, whose plain vectors stay dlib's own."""
    if flip is None:
        flip = name != "dlib"
    if name == "dlib":
        return DlibEmbedder.load(cache_dir, device, batch_size, flip)
    if name == "sface":
        return SFaceEmbedder.load(cache_dir, device, batch_size, flip)
    if name == "dlib+sface":
        return EnsembleEmbedder(DlibEmbedder.load(cache_dir, device, batch_size, flip),
                                SFaceEmbedder.load(cache_dir, device, batch_size, flip),
                                sface_weight)
    raise ValueError(f"unknown embedder {name!r}; known: {', '.join(EMBEDDERS)}")


def torch_device(name: str) -> torch.device:
    """The torch device for a settings value, refusing CUDA where torch sees none."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but torch sees no CUDA device")
    return device
