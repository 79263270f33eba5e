"""Calibrating a learned distance on the people it was fitted on, without flattering it.

A projection pulls apart the people it was fitted on: their non-mated distances overstate how
far apart strangers will be, and a calibration measured on them understates false matches. The
shipped default was fitted on every dev person, so no dev person is left to calibrate it on.
Cross-fitting measures the recipe instead: the people are split into folds (by a hash of their
identity, matcher/eval/folds.py); for each fold the projection's recipe is fitted again on the
photos of the other folds' people, and the fold's own pairs are measured under that fit. The
table pools every fold's pairs: each pair was measured by a fit that never saw either person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from matcher.calibration import Calibration, fit
from matcher.embed import FacePipeline
from matcher.embed.projection import ProjectedEmbedder, fit_projection
from matcher.eval.calibrate import category_gallery, non_mated_distances
from matcher.eval.crossage import Progress, embed_largest_faces
from matcher.eval.folds import FoldLeak, fitting_photos, person_fold
from matcher.eval.manifest import LabelledPhoto
from matcher.eval.protocol import Protocol

FOLDS = 2


class CrossFitError(ValueError):
    """Cross-fitting cannot measure this model on these photos."""


@dataclass(frozen=True)
class CrossFitFold:
    fitted: list[LabelledPhoto]  # the recipe is refitted on these
    gallery: list[LabelledPhoto]  # and measured on these pairs: people it never saw
    searches: list[LabelledPhoto]


def crossfit_folds(fitted_photos: Sequence[LabelledPhoto], gallery: Sequence[LabelledPhoto],
                   searches: Sequence[LabelledPhoto]) -> list[CrossFitFold]:
    """Each fold's photos to refit on and the pairs measured under that fit; raises FoldLeak
    should a fit ever hold a person it measures."""
    folds = []
    for fold in range(FOLDS):
        def mine(chosen: Sequence[LabelledPhoto], fold: int = fold) -> list[LabelledPhoto]:
            return [p for p in chosen if person_fold(p.identity, FOLDS) == fold]

        entry = CrossFitFold(fitting_photos(fitted_photos, fold, FOLDS), mine(gallery),
                             mine(searches))
        measured = {p.identity for p in (*entry.gallery, *entry.searches)}
        leaked = measured & {p.identity for p in entry.fitted}
        if leaked:
            raise FoldLeak(f"{len(leaked)} people are both refitted on and measured, e.g. "
                           f"{sorted(leaked)[:3]}")
        folds.append(entry)
    return folds


def crossfit_calibration(pipeline: FacePipeline, protocol: Protocol, category: str,
                         fitted_photos: Sequence[LabelledPhoto],
                         source: dict[str, object] | None = None,
                         progress: Progress | None = None,
                         distractors_of_category: bool = False) -> Calibration:
    """The calibration of `pipeline`'s projected model on `protocol` (as
    `protocol_calibration` measures it), each fold's pairs measured under the projection's
    recipe refitted on `fitted_photos` of the other folds' people. `fitted_photos` must be
    the photos the projection was fitted on: every person it holds, no one else."""
    embedder = pipeline.embedder
    if not isinstance(embedder, ProjectedEmbedder):
        raise CrossFitError(f"{pipeline.model_id} has no learned distance to refit: "
                            "calibrate it without cross-fitting")
    projection = embedder.projection
    people = {p.identity for p in fitted_photos}
    if len(projection.fitted_on(people)) != len(people) or len(people) != len(
            projection.people):
        raise CrossFitError(f"the photos given are of {len(people)} people, the projection was "
                            f"fitted on {len(projection.people)} others or more: give the "
                            "manifests it was fitted on")
    base = pipeline.plain()
    gallery = category_gallery(protocol, category, distractors_of_category)
    searches = [s.photo for s in protocol.sightings] + protocol.probes
    photos = list({str(p.path): p for p in (*fitted_photos, *gallery, *searches)}.values())
    vectors = dict(zip((str(p.path) for p in photos),
                       embed_largest_faces(base, photos, progress), strict=True))

    def faces(chosen: Sequence[LabelledPhoto]) -> tuple[NDArray[np.float32], list[str]]:
        kept = [(vector, p.identity) for p in chosen
                if (vector := vectors[str(p.path)]) is not None]
        if not kept:
            return np.empty((0, embedder.base.dim), np.float32), []
        return np.stack([v for v, _ in kept]).astype(np.float32), [who for _, who in kept]

    distances, searched, gallery_faces = [], 0, 0
    for fold in crossfit_folds(fitted_photos, gallery, searches):
        train, train_people = faces(fold.fitted)
        refit = fit_projection(train, train_people, embedder.base.model_id,
                               embedder.base.same_person_distance, projection.recipe)
        fold_gallery, gallery_people = faces(fold.gallery)
        fold_searches, search_people = faces(fold.searches)
        distances.append(non_mated_distances(refit.apply(fold_gallery), gallery_people,
                                             refit.apply(fold_searches), search_people))
        searched += len(search_people)
        gallery_faces += len(gallery_people)
    return fit(pipeline.model_id, category, np.concatenate(distances), searches=searched,
               gallery_faces=gallery_faces,
               source={**(source or {}), "cross_fit_folds": FOLDS})
