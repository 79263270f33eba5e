"""Embedding the stored faces for a model: the vectors a reindex writes before it builds the
new indexes (reindex.py), and that a fit from the store reads (store_fit.py).

Vectors go to `face_vectors` (one row per face and model), committed a batch of photos at a
time, so a run stopped by a crash or Ctrl-C resumes where it stopped: the next run only embeds
the faces that still lack a vector of the target model.

A stored face keeps the detection it came from (detector name, box, score, keypoints): when
the target pipeline uses the same detector, each face is aligned and embedded from it, without
detecting the photo again, so every face gets its vector. Faces stored before detections were
kept (or under another detector) are detected again and matched to the stored ones by box
overlap (IoU >= MIN_IOU): a stored face that is not found again gets no vector and leaves
matching under the new model (counted in the report). A projected model's vectors are
computed from its base model's stored ones where they exist (`project_stored`): no photo is
read.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from matcher.embed import FacePipeline
from matcher.embed.image import load_image
from matcher.embed.projection import Projection
from matcher.embed.types import Detection
from matcher.store import read_photo
from matcher.store.vectors import (
    FaceToEmbed,
    add_missing_vectors,
    count_faces_without_vectors,
    faces_without_vectors,
    vectors_to_derive,
)

log = logging.getLogger(__name__)

MIN_IOU = 0.5
FACES_PER_QUERY = 2000

Box = tuple[float, float, float, float]
Vector = NDArray[np.float32]
ProgressFn = Callable[[int, int], None]  # faces done, faces to do


def iou(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def embed_photos(pipeline: FacePipeline, jpegs: Sequence[bytes],
                 faces: Sequence[Sequence[FaceToEmbed]]) -> list[list[Vector | None]]:
    """For each stored photo, the target model's vector of each of its stored faces.

    A photo whose faces all came from the target pipeline's detector is embedded from those
    stored detections. Any other is detected again and each stored face takes the vector of
    the face found with the most overlap (IoU >= MIN_IOU), or None; several stored faces may
    take the same one (sightings that sent the same pixels share one photo file).
    Pure: no store access (Ray workers run it)."""
    config = pipeline.config
    images = [load_image(data, max_bytes=config.max_image_bytes,
                         max_pixels=config.max_image_pixels) for data in jpegs]
    out: list[list[Vector | None]] = [[] for _ in images]
    stored = [i for i, wanted in enumerate(faces)
              if all(face.detector == pipeline.detector.name for face in wanted)]
    embedded = pipeline.embed_detections([images[i] for i in stored],
                                         [[_detection(f) for f in faces[i]] for i in stored])
    for i, found in zip(stored, embedded, strict=True):
        out[i] = [face.vector for face in found]
    again = sorted(set(range(len(images))) - set(stored))
    for i, found in zip(again, pipeline.process([images[i] for i in again]), strict=True):
        for face in faces[i]:
            overlap, best = max(((iou(face.box, f.box), j) for j, f in enumerate(found)),
                                default=(0.0, -1))
            out[i].append(found[best].vector if overlap >= MIN_IOU else None)
    return out


def _detection(face: FaceToEmbed) -> Detection:
    keypoints = None if face.keypoints is None else np.asarray(face.keypoints, np.float32)
    return Detection(face.box, face.score, keypoints)


@dataclass(frozen=True)
class PhotoBatch:
    paths: list[str]
    faces: list[list[FaceToEmbed]]  # per photo


Job = tuple[list[bytes], list[list[FaceToEmbed]]]  # stored photos and their stored faces


class Embedding(Protocol):
    """Maps photo batches to vectors: in this process, or on a Ray cluster."""

    parallelism: int  # batches handed to `map` at once

    def map(self, jobs: Sequence[Job]) -> list[list[list[Vector | None]]]: ...


@dataclass
class LocalEmbedding:
    """Batches through torch in `parallelism` threads of this process (torch releases the
    GIL while it computes)."""

    pipeline: FacePipeline
    parallelism: int = 1

    def map(self, jobs: Sequence[Job]) -> list[list[list[Vector | None]]]:
        if len(jobs) == 1:
            return [embed_photos(self.pipeline, *jobs[0])]
        with ThreadPoolExecutor(max_workers=self.parallelism) as pool:
            return list(pool.map(lambda job: embed_photos(self.pipeline, *job), jobs))


def _batches(sessions: Any, model_id: str, photos_per_batch: int) -> Iterator[PhotoBatch]:
    """Faces without a vector of `model_id`, grouped by photo, a batch of photos at a time.
    Keyset on the face id: a face not found again is not asked for twice in one run."""
    after = 0
    while True:
        with sessions() as session:
            faces = faces_without_vectors(session, model_id, after, FACES_PER_QUERY)
        if not faces:
            return
        after = faces[-1].face_id
        by_photo: dict[str, list[FaceToEmbed]] = {}
        for face in faces:
            by_photo.setdefault(face.path, []).append(face)
        paths = list(by_photo)
        for start in range(0, len(paths), photos_per_batch):
            chunk = paths[start : start + photos_per_batch]
            yield PhotoBatch(chunk, [by_photo[path] for path in chunk])


@dataclass
class EmbedCounts:
    faces: int = 0  # vectors written
    not_found: int = 0  # stored faces the target pipeline did not find again
    photos: int = 0


def embed_missing(
    sessions: Any, data_dir: Path, model_id: str, embedding: Embedding, photos_per_batch: int,
    progress: ProgressFn | None = None, stop: threading.Event | None = None,
) -> EmbedCounts:
    """Writes the target model's vector of every face that lacks one; resumable.

    Progress counts faces done of faces to do, a total that grows when faces arrive while it
    runs (a live service's uploads, which it embeds too): done never passes it."""
    with sessions() as session:
        total = count_faces_without_vectors(session, model_id)
    counts = EmbedCounts()
    batches = _batches(sessions, model_id, photos_per_batch)
    while group := list(itertools.islice(batches, embedding.parallelism)):
        jobs = [([read_photo(data_dir, path) for path in batch.paths], batch.faces)
                for batch in group]
        for batch, vectors in zip(group, embedding.map(jobs), strict=True):
            pairs = [(face.face_id, vector)
                     for faces, found in zip(batch.faces, vectors, strict=True)
                     for face, vector in zip(faces, found, strict=True) if vector is not None]
            with sessions() as session, session.begin():
                add_missing_vectors(session, model_id, pairs)
            counts.faces += len(pairs)
            counts.not_found += sum(len(faces) for faces in batch.faces) - len(pairs)
            counts.photos += len(batch.paths)
        if progress is not None:
            done = counts.faces + counts.not_found
            if done > total:  # faces stored meanwhile: this run does those left too
                with sessions() as session:
                    total = counts.faces + count_faces_without_vectors(session, model_id)
            progress(done, max(total, done))
        if stop is not None and stop.is_set():
            log.info("reindex to %s stopped after %d faces", model_id, counts.faces)
            break
    return counts


def project_stored(sessions: Any, projection: Projection, progress: ProgressFn | None = None,
                   total: int = 0, stop: threading.Event | None = None) -> int:
    """The projected model's vector of every face that has a vector of its base model, computed
    from that vector: the projection is all that differs, so no photo is read and no network
    runs. Returns how many were written; resumable like embed_missing."""
    done, after = 0, 0
    while True:
        with sessions() as session:
            stored = vectors_to_derive(session, projection.base_model_id, projection.model_id,
                                       after, FACES_PER_QUERY)
        if not stored:
            return done
        after = stored[-1][0]
        projected = projection.apply(np.stack([vector for _, vector in stored]))
        with sessions() as session, session.begin():
            add_missing_vectors(session, projection.model_id,
                        [(face_id, vector) for (face_id, _), vector in zip(stored, projected,
                                                                           strict=True)])
        done += len(stored)
        if progress is not None:
            progress(done, max(total, done))  # faces stored meanwhile are projected too
        if stop is not None and stop.is_set():
            return done
