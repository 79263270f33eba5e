"""How the ablation scores a row: the same index and metrics as `matcher eval`
(`evaluate_vectors`) on the vectors of a variant, one row per variant, or fold reports pooled
by sightings; and children told apart from children alone."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from matcher.config import Settings
from matcher.eval.crossage import CrossAgeReport, evaluate_vectors, protocol_photos
from matcher.eval.manifest import LabelledPhoto
from matcher.eval.protocol import GAP_BANDS, Protocol

FOLDS = 2  # person-disjoint folds by a hash of the person: fitted on one, scored on the other


def as_row(label: str, report: CrossAgeReport) -> dict[str, Any]:
    return {"variant": label, "rank1": report.rank1, "rank10": report.rank10,
            "tpir_at_fpir_1pct": report.tpir_at_fpir_1pct,
            "tpir_hits": round(report.tpir_at_fpir_1pct * report.counts["sightings"]),
            "sightings": report.counts["sightings"],
            "rank1_by_gap": [report.by_gap[b]["rank1"] for b in GAP_BANDS],
            "tpir_by_gap": [report.by_gap[b]["tpir_at_fpir_1pct"] for b in GAP_BANDS]}


def score(protocol: Protocol, vectors: NDArray[np.float32], row_of: dict[str, int],
          settings: Settings, label: str) -> CrossAgeReport:
    return evaluate_vectors(protocol, protocol_vectors(protocol, vectors, row_of), settings,
                            label, vectors.shape[1])


def pooled(label: str, reports: Sequence[CrossAgeReport]) -> dict[str, Any]:
    """Fold reports pooled by sightings (each fold has its own 1%-FPIR threshold)."""
    total = sum(r.counts["sightings"] for r in reports)

    def mean(key: str) -> float:
        return sum(getattr(r, key) * r.counts["sightings"] for r in reports) / total

    def band_mean(band: str, key: str) -> float:
        searches = sum(int(r.by_gap[band]["searches"]) for r in reports)
        return sum(float(r.by_gap[band][key]) * int(r.by_gap[band]["searches"])
                   for r in reports if r.by_gap[band]["searches"]) / max(1, searches)

    return {"variant": label, "rank1": mean("rank1"), "rank10": mean("rank10"),
            "tpir_at_fpir_1pct": mean("tpir_at_fpir_1pct"),
            "tpir_hits": round(mean("tpir_at_fpir_1pct") * total), "sightings": total,
            "rank1_by_gap": [band_mean(b, "rank1") for b in GAP_BANDS],
            "tpir_by_gap": [band_mean(b, "tpir_at_fpir_1pct") for b in GAP_BANDS],
            "per_fold": [as_row(label, r) for r in reports]}


def mapped(vectors: NDArray[np.float32],
           change: Callable[[NDArray[np.float32]], NDArray[np.float32]]) -> NDArray[np.float32]:
    """`change` applied to the rows that have a face (the others stay NaN)."""
    found = ~np.isnan(vectors).any(axis=1)
    changed = change(vectors[found])
    out = np.full((len(vectors), changed.shape[1]), np.nan, np.float32)
    out[found] = changed
    return out


def children_pairs(protocol: Protocol, vectors: NDArray[np.float32], row_of: dict[str, int],
                   far: float = 0.01) -> dict[str, int]:
    """Children told apart from children: every sighting against every case photo of the
    protocol (all children), accepted under the distance that `far` of the pairs of different
    children fall below. The protocol's own false alarms come from adults (LFW) searched
    against a gallery of mostly adults; in service, sightings of children meet children's
    cases. Returns the mated pairs accepted, of how many, and the pairs of different children."""
    cases = [(p.identity, vectors[row_of[str(p.path)]]) for p in protocol.cases]
    cases = [(who, v) for who, v in cases if not np.isnan(v).any()]
    owners = np.array([who for who, _ in cases])
    gallery = np.stack([v for _, v in cases])
    mated, different = [], []
    for sighting in protocol.sightings:
        vector = vectors[row_of[str(sighting.photo.path)]]
        if np.isnan(vector).any():
            continue
        distances = np.linalg.norm(gallery - vector, axis=1)
        mated += list(distances[owners == sighting.case])
        different += list(distances[owners != sighting.case])
    threshold = np.sort(different)[int(np.floor(far * len(different)))]
    return {"hits": int((np.array(mated) < threshold).sum()), "mated": len(mated),
            "different": len(different)}


def protocol_vectors_of(photos: Sequence[LabelledPhoto], vectors: NDArray[np.float32],
                        row_of: dict[str, int]) -> list[NDArray[np.float32] | None]:
    """Each photo's row of `vectors`, None where no face was found (a NaN row)."""
    rows = [vectors[row_of[str(p.path)]] for p in photos]
    return [None if np.isnan(v).any() else v for v in rows]


def protocol_vectors(protocol: Protocol, vectors: NDArray[np.float32], row_of: dict[str, int]
                     ) -> list[NDArray[np.float32] | None]:
    return protocol_vectors_of(protocol_photos(protocol), vectors, row_of)


