"""Photo -> faces: detect at a working resolution, align and embed at full resolution."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from matcher.embed.detector import Detector, get_detector
from matcher.embed.embedder import AlignedFaces, Embedder, get_embedder, torch_device
from matcher.embed.image import resize_for_detection
from matcher.embed.projection import ProjectedEmbedder, chosen_projection
from matcher.embed.quality import quality_from, sharpness_batch
from matcher.embed.types import Detection, Face, Image

log = logging.getLogger(__name__)

# Small-faces mode upsamples small photos (YuNet's smallest anchor is ~10 px) and never works
# below the full resolution of large ones, up to this side.
SMALL_FACES_MAX_SIDE = 4096
SMALL_FACES_UPSAMPLE = 2.0


@dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline is built from and works with: the model (the first five fields, named
    as the settings that choose it) and how photos go through it. The top turns the settings
    into one (`matcher.wiring.pipeline_config`); nothing here reads them."""

    detector: str
    embedder: str
    embed_flip: bool | None  # None: the embedder's own default
    ensemble_sface_weight: float
    projection_file: Literal["shipped", "none"] | Path
    cache_dir: Path
    device: str
    threads: int
    detect_threshold: float
    embed_batch_size: int
    detect_batch_size: int
    detect_max_side: int
    small_faces: bool
    min_face_px: int
    min_sharpness: float
    max_image_bytes: int
    max_image_pixels: int


@dataclass(frozen=True)
class _Aligned:
    """Per-image intermediate: detections, reported points, the chips quality measures."""

    detections: list[Detection]
    landmarks: np.ndarray
    chips: np.ndarray


class FacePipeline:
    """Detector + embedder, loaded once, used for every photo."""

    def __init__(self, config: PipelineConfig, detector: Detector, embedder: Embedder) -> None:
        self.config = config
        self.detector = detector
        self.embedder = embedder

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    def plain(self) -> FacePipeline:
        """This pipeline without its projection (what a projection is fitted on, and what a
        store made before the shipped fit keeps serving); itself when it has none."""
        if not isinstance(self.embedder, ProjectedEmbedder):
            return self
        return FacePipeline(replace(self.config, projection_file="none"), self.detector,
                            self.embedder.base)

    def detection_side(self, image: Image) -> int:
        longest = max(image.shape[:2])
        if self.config.small_faces:
            return min(SMALL_FACES_MAX_SIDE, max(longest, int(longest * SMALL_FACES_UPSAMPLE)))
        return min(longest, self.config.detect_max_side)

    def detect(self, images: Sequence[Image]) -> list[list[Detection]]:
        """Detections in each image's own (full-resolution) coordinates."""
        working, scales = [], []
        for image in images:
            resized, scale = resize_for_detection(image, self.detection_side(image))
            working.append(resized)
            scales.append(scale)
        found: list[list[Detection]] = []
        batch = self.config.detect_batch_size
        for start in range(0, len(working), batch):
            found.extend(self.detector.detect(working[start : start + batch]))
        return [
            [d if scale == 1.0 else d.scaled(scale) for d in dets]
            for dets, scale in zip(found, scales, strict=True)
        ]

    def process(self, images: Sequence[Image]) -> list[list[Face]]:
        """Every face of every image, with quality and descriptor; one network pass for all."""
        return self.embed_detections(images, self.detect(images))

    def embed_detections(self, images: Sequence[Image],
                         detections_per_image: Sequence[Sequence[Detection]]
                         ) -> list[list[Face]]:
        """`process` for detections already made (by this detector: a reindex re-embeds
        stored faces from their stored detections without detecting again)."""
        aligned: list[_Aligned] = []
        embedder_input: list[AlignedFaces] = []
        for image, detections in zip(images, detections_per_image, strict=True):
            prepared = self.embedder.align(image, detections, self.detector)
            aligned.append(_Aligned(list(detections), prepared.landmarks, prepared.chips[0]))
            embedder_input.append(prepared)
        if not aligned:
            return []
        vectors = self.embedder.embed_aligned(embedder_input)
        results: list[list[Face]] = []
        offset = 0
        for item in aligned:
            faces = []
            sharpness = sharpness_batch(item.chips) if len(item.chips) else np.zeros(0)
            for i, detection in enumerate(item.detections):
                quality = quality_from(
                    detection.score,
                    detection.box,
                    float(sharpness[i]),
                    min_face_px=self.config.min_face_px,
                    min_sharpness=self.config.min_sharpness,
                )
                faces.append(
                    Face(
                        box=detection.box,
                        landmarks=item.landmarks[i],
                        score=detection.score,
                        quality=quality,
                        vector=vectors[offset + i],
                        keypoints=detection.keypoints,
                    )
                )
            offset += len(item.detections)
            results.append(faces)
        return results


def build_pipeline(config: PipelineConfig) -> FacePipeline:
    """Loads the detector and embedder once; reuse the result for every request."""
    torch.set_num_threads(config.threads)
    device = str(torch_device(config.device))
    detector = get_detector(config.detector, config.cache_dir, device, config.detect_threshold)
    embedder = get_embedder(config.embedder, config.cache_dir, device, config.embed_batch_size,
                            config.embed_flip, config.ensemble_sface_weight)
    projection = chosen_projection(config.projection_file, embedder.model_id)
    if projection is not None:
        embedder = ProjectedEmbedder(embedder, projection)
    log.info("face pipeline ready: detector=%s model=%s device=%s",
             config.detector, embedder.model_id, device)
    return FacePipeline(config, detector, embedder)
