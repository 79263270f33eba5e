"""The cross-age evaluation, end to end: manifests -> pipeline -> index -> figures."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.embed.errors import ImageError
from matcher.embed.image import load_image
from matcher.embed.types import Face
from matcher.eval.manifest import LabelledPhoto
from matcher.eval.metrics import FPIR, cmc, fpir_threshold, mated_ranks, rates
from matcher.eval.protocol import GAP_BANDS, MAIN, Protocol, gap_band
from matcher.index import FaceIndex, Fusion, best
from matcher.wiring import index_params

log = logging.getLogger(__name__)

TOP_K = 20  # candidates kept per search: rank-10 and the CMC curve need no more


@dataclass(frozen=True)
class CrossAgeReport:
    rank1: float
    rank10: float
    tpir_at_fpir_1pct: float
    threshold: float  # the distance that gives 1% FPIR on the non-mated searches
    by_gap: dict[str, dict[str, float | int]]
    counts: dict[str, int]
    cmc: list[float] = field(default_factory=list)  # identification rate at ranks 1..TOP_K
    model_id: str = ""  # the descriptor measured
    case_photos: str = "youngest"  # the protocol variant (matcher.eval.protocol.CASE_PHOTOS)
    fit_only: bool = False  # searches only by a face fit for matching, as the service does

    def as_dict(self) -> dict[str, Any]:
        return {
            "rank1": self.rank1, "rank10": self.rank10,
            "tpir_at_fpir_1pct": self.tpir_at_fpir_1pct, "threshold": self.threshold,
            "by_gap": self.by_gap, "counts": self.counts, "cmc": self.cmc,
            "model_id": self.model_id, "case_photos": self.case_photos,
            "fit_only": self.fit_only,
        }


Progress = Callable[[int, int], None]


def embed_largest_faces(
    pipeline: FacePipeline, photos: Sequence[LabelledPhoto], progress: Progress | None = None
) -> list[NDArray[np.float32] | None]:
    """The descriptor of each photo's largest face; None where no face (or no image) is found."""
    return [None if face is None else face.vector
            for face in largest_faces(pipeline, photos, progress)]


def largest_faces(
    pipeline: FacePipeline, photos: Sequence[LabelledPhoto], progress: Progress | None = None
) -> list[Face | None]:
    """Each photo's largest face; None where no face (or no image) is found."""
    config = pipeline.config
    found: list[Face | None] = []
    batch = config.detect_batch_size
    for start in range(0, len(photos), batch):
        chunk = photos[start : start + batch]
        images, slots = [], []
        for photo in chunk:
            try:
                data = photo.path.read_bytes()
                images.append(load_image(data, max_bytes=config.max_image_bytes,
                                         max_pixels=config.max_image_pixels))
                slots.append(len(found))
            except (OSError, ImageError) as exc:
                log.warning("cannot read %s: %s", photo.path, exc)
            found.append(None)
        for slot, faces in zip(slots, pipeline.process(images), strict=True):
            if faces:
                found[slot] = max(faces, key=lambda f: (f.box[2] - f.box[0])
                                  * (f.box[3] - f.box[1]))
        if progress is not None:
            progress(min(start + batch, len(photos)), len(photos))
    return found


def evaluate(
    protocol: Protocol,
    pipeline: FacePipeline,
    settings: Settings,
    progress: Progress | None = None,
    case_photos: str = "youngest",
    fit_only: bool = False,
) -> CrossAgeReport:
    """Every photo through the pipeline, then `evaluate_vectors`. `fit_only` searches a
    sighting or non-mated probe only when its largest face is fit for matching (big and sharp
    enough), as the service searches only fit faces; an unfit one counts as a search with no
    face. A case photo's face goes into the gallery either way, as the service indexes every
    case face."""
    return evaluate_protocols({MAIN: protocol}, pipeline, settings, progress, case_photos,
                              fit_only)[MAIN]


def evaluate_protocols(
    protocols: Mapping[str, Protocol],
    pipeline: FacePipeline,
    settings: Settings,
    progress: Progress | None = None,
    case_photos: str = "youngest",
    fit_only: bool = False,
) -> dict[str, CrossAgeReport]:
    """Each protocol scored as `evaluate` scores one, each photo through the pipeline once:
    the variants share the cross-age set's photos, and embedding is the slow part."""
    photos = list({p.path: p for protocol in protocols.values()
                   for p in protocol_photos(protocol)}.values())
    faces = dict(zip([p.path for p in photos], largest_faces(pipeline, photos, progress),
                     strict=True))
    reports = {}
    for name, protocol in protocols.items():
        searched_from = len(protocol.gallery)
        vectors: list[NDArray[np.float32] | None] = []
        for n, photo in enumerate(protocol_photos(protocol)):
            face = faces[photo.path]
            unfit_search = fit_only and n >= searched_from and face is not None \
                and not face.quality.fit
            vectors.append(None if face is None or unfit_search else face.vector)
        report = evaluate_vectors(protocol, vectors, settings, pipeline.model_id,
                                  pipeline.embedder.dim, case_photos)
        reports[name] = replace(report, fit_only=fit_only)
    return reports


def reports_as_dict(reports: Mapping[str, CrossAgeReport]) -> dict[str, Any]:
    """`matcher eval --json`: what was measured, then each protocol's report by name."""
    first = next(iter(reports.values()))
    return {"model_id": first.model_id, "case_photos": first.case_photos,
            "fit_only": first.fit_only,
            "protocols": {name: report.as_dict() for name, report in reports.items()}}


def protocol_photos(protocol: Protocol) -> list[LabelledPhoto]:
    """Gallery, sightings and non-mated probes, in the order `evaluate_vectors` reads them."""
    return protocol.gallery + [s.photo for s in protocol.sightings] + protocol.probes


def evaluate_vectors(
    protocol: Protocol,
    vectors: Sequence[NDArray[np.float32] | None],
    settings: Settings,
    model_id: str,
    dim: int,
    case_photos: str = "youngest",
    fusion: Fusion = best,
    fpir: float = FPIR,
    threshold: float | None = None,
) -> CrossAgeReport:
    """The gallery's descriptors into the index (a case with several photos ranks by the
    index's `fusion` of its faces: by default its best face, as in the service), the searches
    against it. `vectors` follow `protocol_photos` (None: no face found). TPIR is counted
    under the distance that gives `fpir` on the non-mated searches, or under `threshold` when
    given (to score another tool's threshold; `counts["false_alarms"]` says what it allows)."""
    vectors = list(vectors)
    if len(vectors) != len(protocol_photos(protocol)):
        raise ValueError(f"{len(vectors)} vectors for {len(protocol_photos(protocol))} photos")
    gallery_n, sighting_n = len(protocol.gallery), len(protocol.sightings)
    gallery_vecs = vectors[:gallery_n]
    sighting_vecs = vectors[gallery_n : gallery_n + sighting_n]
    probe_vecs = vectors[gallery_n + sighting_n :]

    owner_of = {identity: n for n, identity in enumerate(
        sorted({p.identity for p in protocol.gallery}))}
    index = FaceIndex(model_id, dim, index_params(settings), fusion)
    kept = [i for i, v in enumerate(gallery_vecs) if v is not None]
    if not kept:
        raise ValueError("no face was found in any gallery photo")
    index.add(
        np.array(kept, dtype=np.int64),
        np.array([owner_of[protocol.gallery[i].identity] for i in kept], dtype=np.int64),
        np.stack([gallery_vecs[i] for i in kept]),  # type: ignore[misc]
    )
    ranks, first_distance = _search_mated(index, sighting_vecs, protocol, owner_of)
    non_mated = _search_non_mated(index, probe_vecs)
    if threshold is None:
        threshold = fpir_threshold(non_mated, fpir)
    overall = rates(ranks, first_distance, threshold)
    gaps = np.array([s.gap for s in protocol.sightings])
    by_gap = {}
    for band in GAP_BANDS:
        mask = np.array([gap_band(g) == band for g in gaps], dtype=bool)
        by_gap[band] = rates(ranks[mask], first_distance[mask], threshold).as_dict()
    counts = {
        "sightings": sighting_n,
        "sighting_people": len({s.case for s in protocol.sightings}),
        "cases": protocol.case_people,
        "case_photos": len(protocol.cases),
        "gallery": len(kept),
        "non_mated": len(protocol.probes),
        "false_alarms": int((non_mated < threshold).sum()),  # non-mated searches under it
        "faces_not_found_gallery": gallery_n - len(kept),
        "faces_not_found_sightings": sum(v is None for v in sighting_vecs),
        "faces_not_found_non_mated": sum(v is None for v in probe_vecs),
    }
    return CrossAgeReport(
        overall.rank1, overall.rank10, overall.tpir_at_fpir_1pct, threshold, by_gap, counts,
        cmc(ranks, TOP_K).tolist(), model_id, case_photos,
    )


def _search_mated(
    index: FaceIndex,
    vectors: list[NDArray[np.float32] | None],
    protocol: Protocol,
    owner_of: dict[str, int],
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Rank of the true case (0 = not in the top TOP_K or no face) and the rank-1 distance."""
    ranks = np.zeros(len(vectors), dtype=np.int64)
    first = np.full(len(vectors), np.inf, dtype=np.float32)
    found = [i for i, v in enumerate(vectors) if v is not None]
    if found:
        hits = index.search(np.stack([vectors[i] for i in found]), k=TOP_K)  # type: ignore[misc]
        truth = np.array([owner_of[protocol.sightings[i].case] for i in found], dtype=np.int64)
        ranks[found] = mated_ranks(hits.owners, truth)
        first[found] = hits.distances[:, 0]
    return ranks, first


def _search_non_mated(
    index: FaceIndex, vectors: list[NDArray[np.float32] | None]
) -> NDArray[np.float32]:
    """Best distance of each non-mated search; inf where no face was found."""
    best = np.full(len(vectors), np.inf, dtype=np.float32)
    found = [i for i, v in enumerate(vectors) if v is not None]
    if found:
        hits = index.search(np.stack([vectors[i] for i in found]), k=1)  # type: ignore[misc]
        best[found] = hits.distances[:, 0]
    return best
