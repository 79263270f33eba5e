"""Recipes of a learned distance compared person-disjoint on three regimes (docs/accuracy.md).

The regimes: the main protocol (one early case photo per child, adult distractors and adult
non-mated searches), "children as distractors" (other children's young photos as the other
cases and as the non-mated searches), and the same with every photo of the child up to age 12
as the case. A recipe is fitted on every dev photo (FG-NET, LFW, LAG, or the subset it names)
of one fold's people and scored on a protocol made of the other fold's people only, in several
independent splits of the people (matcher/eval/folds.py); every fit is checked against the
people it is scored on (`check_disjoint` raises FoldLeak).

Each photo's largest face is embedded once by the plain model; fitting and scoring work on
those vectors, so one run compares many recipes in minutes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.embed.embedder import l2_normalise
from matcher.embed.projection import (
    AnyRecipe,
    PldaRecipe,
    Recipe,
    StackedRecipe,
    fit_projection,
)
from matcher.eval.crossage import (
    CrossAgeReport,
    Progress,
    embed_largest_faces,
    evaluate_vectors,
    protocol_photos,
)
from matcher.eval.folds import check_disjoint, fitting_photos, fold_protocol
from matcher.eval.manifest import LabelledPhoto, read_manifest
from matcher.eval.metrics import FPIR
from matcher.eval.protocol import GAP_BANDS, Protocol, build_protocol

log = logging.getLogger(__name__)

FOLDS = 2
DEFAULT = "**softmax then PLDA (proj+plda): the default**"
WIDER_FPIR = 0.05  # the TPIR also reported here: the service's default threshold's rate
SETS = {"fgnet": "fgnet-dev", "lfw": "lfw-dev", "lag": "lag-dev"}
Transform = Callable[[NDArray[np.float32]], NDArray[np.float32]]
Fit = Callable[[NDArray[np.float32], list[str]], Transform]


@dataclass(frozen=True)
class DevPhotos:
    """Every dev photo with the plain model's vector of its largest face (NaN: none)."""

    photos: list[LabelledPhoto]
    vectors: NDArray[np.float32]
    model_id: str
    same_person_distance: float

    def of(self, dataset: str) -> list[LabelledPhoto]:
        return [p for p in self.photos if p.identity.startswith(f"{dataset}-")]


def read_dev_photos(root: Path) -> list[LabelledPhoto]:
    """FG-NET, LFW and LAG dev, in that order (identities carry the set's prefix)."""
    return [p for name in SETS.values() for p in read_manifest(root / name / "manifest.csv")]


def embed_dev(pipeline: FacePipeline, root: Path, cache: Path | None = None,
              progress: Progress | None = None) -> DevPhotos:
    """The dev photos' vectors, from `cache` when it holds them for this model and photos."""
    photos = read_dev_photos(root)
    paths = np.array([str(p.path.relative_to(root)) for p in photos])
    if cache is not None and cache.is_file():
        with np.load(cache) as saved:
            if str(saved["model_id"]) == pipeline.model_id and np.array_equal(
                    saved["paths"], paths):
                return DevPhotos(photos, saved["vectors"], pipeline.model_id,
                                 pipeline.embedder.same_person_distance)
        log.info("the cache %s is of other photos or another model: embedding", cache)
    dim = pipeline.embedder.dim
    vectors = np.stack([np.full(dim, np.nan, np.float32) if v is None else v
                        for v in embed_largest_faces(pipeline, photos, progress)])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, paths=paths, vectors=vectors, model_id=np.array(pipeline.model_id))
    return DevPhotos(photos, vectors, pipeline.model_id, pipeline.embedder.same_person_distance)


def regimes(dev: DevPhotos) -> dict[str, Protocol]:
    """main; children (as distractors); children-all-photos: the same with every photo of the
    child up to age 12 as the case."""
    fgnet, lfw = dev.of("fgnet"), dev.of("lfw")
    young = [p for p in dev.of("lag") if p.path.parent.name == "y"]  # lag-dev/<name>/y/
    return {"main": build_protocol(fgnet, lfw), "children": build_protocol(fgnet, young),
            "children-all-photos": build_protocol(fgnet, young, "all")}


def projection_fit(recipe: AnyRecipe, dev: DevPhotos) -> Fit:
    def fit(x: NDArray[np.float32], who: list[str]) -> Transform:
        return fit_projection(x, who, dev.model_id, dev.same_person_distance, recipe).apply
    return fit


def beside_plain(recipe: AnyRecipe, dev: DevPhotos, weight: float) -> Fit:
    """The plain vector (times `weight`) beside the fitted one: squared distances add up."""
    def fit(x: NDArray[np.float32], who: list[str]) -> Transform:
        fitted = projection_fit(recipe, dev)(x, who)
        return lambda v: np.hstack([weight * v, fitted(v)]).astype(np.float32)
    return fit


def per_network(recipe: AnyRecipe, dev: DevPhotos) -> Fit:
    """The recipe fitted on each network's half of the vector alone, the two concatenated."""
    def fit(x: NDArray[np.float32], who: list[str]) -> Transform:
        half = x.shape[1] // 2
        first = projection_fit(recipe, dev)(x[:, :half], who)
        second = projection_fit(recipe, dev)(x[:, half:], who)
        return lambda v: np.hstack([first(v[:, :half]), second(v[:, half:])])
    return fit


def whitened_first(recipe: AnyRecipe, dev: DevPhotos) -> Fit:
    """Centred, whitened by the total covariance and scaled to unit length, then the recipe
    (the classic preparation for PLDA in speaker recognition)."""
    def fit(x: NDArray[np.float32], who: list[str]) -> Transform:
        mean = x.mean(axis=0)
        values, vectors = np.linalg.eigh(np.cov((x - mean).T) + 1e-6 * np.eye(x.shape[1]))
        whiten = (vectors / np.sqrt(values)).astype(np.float32)

        def prepare(v: NDArray[np.float32]) -> NDArray[np.float32]:
            return l2_normalise(((v - mean) @ whiten).astype(np.float32))

        fitted = projection_fit(recipe, dev)(prepare(x), who)
        return lambda v: fitted(prepare(v))
    return fit


@dataclass(frozen=True)
class Candidate:
    label: str
    fit: Fit | None  # None: the plain vectors
    fitted_on: tuple[str, ...] = ("fgnet", "lfw", "lag")
    notes: str = ""


def candidates(dev: DevPhotos) -> list[Candidate]:
    """Every recipe docs/accuracy.md reports, the shipped one (`proj+plda`) among them."""
    stacked = StackedRecipe()
    old = ("fgnet", "lfw")
    return [
        Candidate("plain (nothing fitted)", None),
        Candidate("PLDA, FG-NET + LFW (the earlier opt-in)", projection_fit(PldaRecipe(), dev),
                  old),
        Candidate("softmax, FG-NET + LFW (the earlier opt-in)", projection_fit(Recipe(), dev),
                  old),
        Candidate("PLDA", projection_fit(PldaRecipe(), dev)),
        Candidate("PLDA, shrinkage 0.3", projection_fit(PldaRecipe(0.3), dev)),
        Candidate("PLDA, shrinkage 3", projection_fit(PldaRecipe(3.0), dev)),
        Candidate("PLDA, FG-NET + LAG (children and their adult photos only)",
                  projection_fit(PldaRecipe(), dev), ("fgnet", "lag")),
        Candidate("softmax", projection_fit(Recipe(), dev)),
        Candidate(DEFAULT, projection_fit(stacked, dev)),
        Candidate("softmax then PLDA, FG-NET + LFW", projection_fit(stacked, dev), old),
        Candidate("softmax then PLDA, shrinkage 0.3",
                  projection_fit(StackedRecipe(then=PldaRecipe(0.3)), dev)),
        Candidate("softmax then PLDA, shrinkage 3",
                  projection_fit(StackedRecipe(then=PldaRecipe(3.0)), dev)),
        Candidate("softmax (300 steps) then PLDA",
                  projection_fit(StackedRecipe(Recipe(steps=300)), dev)),
        Candidate("softmax (decay 0.1) then PLDA",
                  projection_fit(StackedRecipe(Recipe(decay=0.1)), dev)),
        Candidate("softmax (decay 0) then PLDA",
                  projection_fit(StackedRecipe(Recipe(decay=0.0)), dev)),
        Candidate("PLDA per network, concatenated", per_network(PldaRecipe(), dev)),
        Candidate("whitened, unit length, then PLDA", whitened_first(PldaRecipe(), dev)),
        *(Candidate(f"plain x {w:g} beside softmax then PLDA", beside_plain(stacked, dev, w))
          for w in (5.0, 10.0, 20.0)),
    ]


@dataclass
class Scores:
    """One candidate's fold reports, by regime."""

    candidate: Candidate
    reports: dict[str, list[CrossAgeReport]] = field(default_factory=dict)
    wider: dict[str, list[CrossAgeReport]] = field(default_factory=dict)  # at WIDER_FPIR


def compare(dev: DevPhotos, chosen: Sequence[Candidate], settings: Settings, splits: int,
            progress: Callable[[str], None] | None = None) -> list[Scores]:
    """Every candidate fitted on one fold's people and scored on the other's, per split."""
    protocols = regimes(dev)
    found: NDArray[np.bool_] = np.asarray(~np.isnan(dev.vectors).any(axis=1))
    row_of = {str(p.path): n for n, p in enumerate(dev.photos)}
    scores = [Scores(c, {r: [] for r in protocols}, {r: [] for r in protocols}) for c in chosen]
    for split in range(splits):
        for fold in range(FOLDS):
            scored = {name: fold_protocol(p, fold, FOLDS, split) for name, p in protocols.items()}
            for entry in scores:
                vectors = _fitted_vectors(dev, entry.candidate, fold, split, scored, found)
                for name, protocol in scored.items():
                    rows = [row_of[str(p.path)] for p in protocol_photos(protocol)]
                    searched = [None if not found[r] else vectors[r] for r in rows]
                    for fpir, kept in ((FPIR, entry.reports), (WIDER_FPIR, entry.wider)):
                        kept[name].append(evaluate_vectors(
                            protocol, searched, settings, entry.candidate.label,
                            vectors.shape[1], fpir=fpir))
            if progress is not None:
                progress(f"split {split} fold {fold} scored")
    return scores


def _fitted_vectors(dev: DevPhotos, candidate: Candidate, fold: int, split: int,
                    scored: dict[str, Protocol], found: NDArray[np.bool_]
                    ) -> NDArray[np.float32]:
    """Every dev vector, mapped by the candidate fitted on the people outside `fold`."""
    if candidate.fit is None:
        return dev.vectors
    allowed = [p for dataset in candidate.fitted_on for p in dev.of(dataset)]
    fitted = fitting_photos(allowed, fold, FOLDS, split)
    for protocol in scored.values():
        check_disjoint(fitted, protocol)
    rows = {str(p.path) for p in fitted}
    mask = found & np.array([str(p.path) in rows for p in dev.photos])
    transform = candidate.fit(dev.vectors[mask], [p.identity for p, m in
                                                   zip(dev.photos, mask, strict=True) if m])
    mapped = transform(dev.vectors[found])
    out = np.full((len(dev.vectors), mapped.shape[1]), np.nan, np.float32)
    out[found] = mapped
    return out


def pooled_report(reports: Sequence[CrossAgeReport]) -> CrossAgeReport:
    """Fold reports pooled by sightings (each fold has its own 1%-FPIR threshold): rates, the
    CMC and each age band weighted by its searches; counts summed."""
    def weighted(values: Sequence[float], weights: Sequence[int]) -> float:
        return sum(v * w for v, w in zip(values, weights, strict=True) if w) / max(1, sum(weights))

    sightings = [r.counts["sightings"] for r in reports]
    by_gap: dict[str, dict[str, float | int]] = {}
    for band in GAP_BANDS:
        searches = [int(r.by_gap[band]["searches"]) for r in reports]
        by_gap[band] = {"searches": sum(searches), **{
            key: weighted([float(r.by_gap[band][key]) for r in reports], searches)
            for key in ("rank1", "rank10", "tpir_at_fpir_1pct")}}
    first = reports[0]
    return CrossAgeReport(
        rank1=weighted([r.rank1 for r in reports], sightings),
        rank10=weighted([r.rank10 for r in reports], sightings),
        tpir_at_fpir_1pct=weighted([r.tpir_at_fpir_1pct for r in reports], sightings),
        threshold=float("nan"),  # one per fold
        by_gap=by_gap,
        counts={key: sum(r.counts[key] for r in reports) for key in first.counts},
        cmc=[weighted([r.cmc[k] for r in reports], sightings) for k in range(len(first.cmc))],
        model_id=first.model_id, case_photos=first.case_photos)


def pooled(reports: Sequence[CrossAgeReport]) -> dict[str, Any]:
    """The pooled figures of `pooled_report` as a table row."""
    report = pooled_report(reports)
    return {"rank1": report.rank1, "rank10": report.rank10,
            "tpir_at_fpir_1pct": report.tpir_at_fpir_1pct,
            "sightings": report.counts["sightings"],
            "rank1_by_gap": [report.by_gap[b]["rank1"] for b in GAP_BANDS],
            "tpir_by_gap": [report.by_gap[b]["tpir_at_fpir_1pct"] for b in GAP_BANDS]}
