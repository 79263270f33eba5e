"""Cases with every photo up to age 12 (`--case-photos all`): how a case's photos are fused
into its rank. By its best face (the service's), by the mean of its two closest faces, or by
one template per case: the mean descriptor, or the mean weighted by the quality of each photo's
face (the detector's confidence, the face's width, the chip's sharpness)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from matcher.config import Settings
from matcher.embed.embedder import l2_normalise
from matcher.embed.types import FaceQuality
from matcher.eval.ablation.scoring import as_row, protocol_vectors, protocol_vectors_of
from matcher.eval.crossage import evaluate_vectors, largest_faces
from matcher.eval.manifest import LabelledPhoto
from matcher.eval.protocol import build_protocol
from matcher.index import best, mean_top2
from matcher.wiring import load_pipeline

# Quality-weighted templates: each photo's unit vector weighted by one measure of its largest
# face's quality, as the service measures it (FaceQuality), fixed before measuring.
QUALITY_WEIGHTS: dict[str, Callable[[FaceQuality], float]] = {
    "the detector's confidence": lambda q: q.score,
    "the face's width in px": lambda q: q.size_px,
    "the chip's sharpness": lambda q: q.sharpness,
}


def largest_face_quality(photos: Sequence[LabelledPhoto], settings: Settings
                         ) -> list[FaceQuality | None]:
    """The service's quality of each photo's largest face (the one `descriptors` embeds)."""
    return [None if face is None else face.quality
            for face in largest_faces(load_pipeline(settings), photos)]


def case_fusion_rows(cross_age: list[LabelledPhoto], distractors: list[LabelledPhoto],
                     vectors: NDArray[np.float32], row_of: dict[str, int],
                     settings: Settings) -> list[dict[str, Any]]:
    """Cases with every photo up to 12 (`--case-photos all`): how a case's photos are fused."""
    protocol = build_protocol(cross_age, distractors, "all")
    rows = [as_row(f"every photo to 12, case ranked by {name}", evaluate_vectors(
        protocol, protocol_vectors(protocol, vectors, row_of), settings, name,
        vectors.shape[1], "all", fusion)) for name, fusion in (
            ("its best face (the index's `best`, the service's)", best),
            ("the mean of its two closest faces (`mean_top2`)", mean_top2))]
    # One template per case: the (weighted) mean of its photos' unit vectors, at unit length.
    photos_of: dict[str, list[LabelledPhoto]] = {}
    for photo in protocol.cases:
        photos_of.setdefault(photo.identity, []).append(photo)
    templates = replace(protocol, cases=[photos[-1] for photos in photos_of.values()])
    quality = dict(zip(map(str, (p.path for p in protocol.cases)),
                       largest_face_quality(protocol.cases, settings), strict=True))
    weightings: dict[str, Callable[[FaceQuality], float]] = {
        "mean descriptor": lambda q: 1.0,
        **{f"weighted by {name}": weight for name, weight in QUALITY_WEIGHTS.items()}}
    for name, weight in weightings.items():
        template_vectors = protocol_vectors(templates, vectors, row_of)
        for n, photos in enumerate(photos_of.values()):
            found = [(v, weight(q)) for p, v in zip(
                photos, protocol_vectors_of(photos, vectors, row_of), strict=True)
                if v is not None and (q := quality[str(p.path)]) is not None]
            template_vectors[n] = _weighted_template(found) if found else None
        rows.append(as_row(f"every photo to 12, one template per case ({name})",
                           evaluate_vectors(templates, template_vectors, settings,
                                            f"template {name}", vectors.shape[1], "all")))
    return rows


def _weighted_template(weighted: Sequence[tuple[NDArray[np.float32], float]]
                       ) -> NDArray[np.float32]:
    """The weighted mean of unit vectors, scaled to unit length."""
    total = np.sum([weight * vector for vector, weight in weighted], axis=0)
    return l2_normalise(total[None].astype(np.float32))[0]


