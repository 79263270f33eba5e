"""Measuring a calibration: distances between faces of different people, through the project's
own pipeline, on labelled photos (the cross-age protocol's gallery and searches by default)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from matcher.calibration import Calibration, fit
from matcher.embed import FacePipeline
from matcher.eval.crossage import Progress, embed_largest_faces
from matcher.eval.manifest import LabelledPhoto
from matcher.eval.protocol import Protocol

CHUNK = 1024  # probes per distance block: memory stays at CHUNK x gallery floats


def non_mated_distances(
    gallery: NDArray[np.float32], gallery_people: Sequence[str],
    probes: NDArray[np.float32], probe_people: Sequence[str],
) -> NDArray[np.float32]:
    """Euclidean distances of every (probe, gallery) pair of two different people."""
    if gallery.size == 0 or probes.size == 0:
        return np.empty(0, dtype=np.float32)
    owners = np.asarray(gallery_people)
    out = []
    for start in range(0, len(probes), CHUNK):
        block = probes[start : start + CHUNK]
        squared = ((block[:, None, :] - gallery[None, :, :]) ** 2).sum(axis=2)
        different = np.asarray(probe_people[start : start + CHUNK])[:, None] != owners[None, :]
        out.append(np.sqrt(squared[different]).astype(np.float32))
    return np.concatenate(out)


def _faces(pipeline: FacePipeline, photos: Sequence[LabelledPhoto], progress: Progress | None
           ) -> tuple[NDArray[np.float32], list[str]]:
    vectors = embed_largest_faces(pipeline, photos, progress)
    kept = [(v, p.identity) for v, p in zip(vectors, photos, strict=True) if v is not None]
    if not kept:
        return np.empty((0, pipeline.embedder.dim), dtype=np.float32), []
    return np.stack([v for v, _ in kept]).astype(np.float32), [who for _, who in kept]


def calibrate(
    pipeline: FacePipeline, gallery: Sequence[LabelledPhoto], searches: Sequence[LabelledPhoto],
    category: str, source: dict[str, object] | None = None, progress: Progress | None = None,
) -> Calibration:
    """FMR per distance from every pair of a search photo and a gallery photo of two
    different people (photos with no face found take no part)."""
    gallery_vecs, gallery_people = _faces(pipeline, list(gallery), progress)
    search_vecs, search_people = _faces(pipeline, list(searches), progress)
    distances = non_mated_distances(gallery_vecs, gallery_people, search_vecs, search_people)
    return fit(pipeline.model_id, category, distances, searches=len(search_people),
               gallery_faces=len(gallery_people), source=source)


def protocol_calibration(pipeline: FacePipeline, protocol: Protocol, category: str,
                         source: dict[str, object] | None = None,
                         progress: Progress | None = None,
                         distractors_of_category: bool = False) -> Calibration:
    """Every search of the protocol (its sightings and non-mated probes) against case faces
    of other people: for a category (`child`, `elderly`), the cross-age set's own case photos,
    taken to be of that category; for `any`, the whole gallery, distractors included. With
    `distractors_of_category` the distractors are of the category too (the protocol "children
    as distractors" for `child`), so the whole gallery is the category's.

    The service multiplies a category's rate by that category's active case faces. Children
    look more alike than adults: measured against the whole gallery, a child calibration
    would be diluted by adult faces and understate false matches among children's cases."""
    searches = [s.photo for s in protocol.sightings] + protocol.probes
    gallery = category_gallery(protocol, category, distractors_of_category)
    return calibrate(pipeline, gallery, searches, category, source, progress)


def category_gallery(protocol: Protocol, category: str, distractors_of_category: bool
                     ) -> list[LabelledPhoto]:
    """The case faces a category's calibration measures searches against (see
    `protocol_calibration`)."""
    whole = category == "any" or distractors_of_category
    return protocol.gallery if whole else protocol.cases
