"""Fitting the learned projection on labelled photos, through the pipeline that will use it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from matcher.embed import FacePipeline
from matcher.embed.projection import (
    AnyRecipe,
    ProjectedEmbedder,
    Projection,
    fit_projection,
)
from matcher.eval.crossage import Progress, embed_largest_faces
from matcher.eval.folds import protocol_people
from matcher.eval.manifest import LabelledPhoto
from matcher.eval.protocol import Protocol


class FittedPeopleScored(ValueError):
    """An evaluation would score people whose photos the projection was fitted on."""


def fit_on_photos(pipeline: FacePipeline, photos: Sequence[LabelledPhoto],
                  recipe: AnyRecipe | None = None,
                  progress: Progress | None = None
                  ) -> tuple[Projection, int]:
    """The projection fitted on the largest face of each photo, embedded by `pipeline`'s
    (unprojected) model; also how many photos had a face."""
    if isinstance(pipeline.embedder, ProjectedEmbedder):
        raise ValueError("fit on the base model's vectors: unset MATCHER_PROJECTION_FILE")
    vectors = embed_largest_faces(pipeline, photos, progress)
    found = [(v, p.identity) for v, p in zip(vectors, photos, strict=True) if v is not None]
    if not found:
        raise ValueError("no face was found in any of the photos")
    projection = fit_projection(np.stack([v for v, _ in found]), [i for _, i in found],
                                pipeline.model_id, pipeline.embedder.same_person_distance,
                                recipe)
    return projection, len(found)


def check_not_fitted_on(pipeline: FacePipeline, protocol: Protocol) -> None:
    """Refuse to evaluate a projected model on people it was fitted on."""
    if not isinstance(pipeline.embedder, ProjectedEmbedder):
        return
    shared = pipeline.embedder.projection.fitted_on(protocol_people(protocol))
    if shared:
        raise FittedPeopleScored(
            f"{len(shared)} of the protocol's people (e.g. {sorted(shared)[:3]}) were fitted on "
            "by the projection: their figures would not measure anything. Evaluate on other "
            "people, or fit the projection without them.")
