"""One ablation run: the descriptors of every view (embedded, or read from a cache), every row,
and the markdown tables docs/accuracy-2026-11.md quotes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from matcher.config import Settings
from matcher.eval.ablation.case_fusion import case_fusion_rows
from matcher.eval.ablation.learned import projection_rows, whitening_rows
from matcher.eval.ablation.scoring import FOLDS, as_row, pooled, score
from matcher.eval.ablation.views import (
    DLIB_JITTERS,
    SFACE_SCALES,
    chip_variants,
    descriptor_keys,
    descriptors,
    ensemble_of,
)
from matcher.eval.crossage import protocol_photos
from matcher.eval.folds import fold_protocol
from matcher.eval.manifest import LabelledPhoto, read_manifest
from matcher.eval.protocol import Protocol, build_protocol


class StaleCache(ValueError):
    """The descriptor cache was made from other photos, or lacks views this version embeds."""


def ablation_settings() -> Settings:
    """The model every variant starts from: the default's networks, flip-averaged, 1:1, without
    the learned distance (the ablation fits its own)."""
    return Settings(embedder="dlib+sface", embed_flip=True, ensemble_sface_weight=0.5,
                    projection_file="none")


def ablate(cross_age_manifest: Path, distractors_manifest: Path,
           cache: Path | None = None) -> list[dict[str, Any]]:
    """Every row of the ablation, in the order of the published table."""
    settings = ablation_settings()
    cross_age = read_manifest(cross_age_manifest, require_age=True)
    distractors = read_manifest(distractors_manifest)
    photos = cross_age + distractors  # every photo: whitening fits on them
    protocol = build_protocol(cross_age, distractors)
    paths = np.array([str(p.path) for p in photos])
    raw = views_of(photos, protocol, paths, cache, settings)

    row_of = {p: i for i, p in enumerate(paths)}
    default = ensemble_of(raw, ["colour"], ["colour"])
    rows = [as_row("default: dlib + SFace, colour chips, each flip-averaged",
                   score(protocol, default, row_of, settings, "default"))]
    chip_vectors = {label: ensemble_of(raw, dlib_views, sface_views)
                    for label, dlib_views, sface_views in chip_variants()}
    rows += [as_row(label, score(protocol, vectors, row_of, settings, label))
             for label, vectors in chip_vectors.items()]
    scales = ["colour", *(f"scale{s}" for s in SFACE_SCALES)]
    rows.append(as_row("SFace chips at 0.95 / 1 / 1.05 scale averaged", score(
        protocol, ensemble_of(raw, ["colour"], scales), row_of, settings, "scales")))
    jitters = ["colour", *(f"jitter{n}" for n in range(len(DLIB_JITTERS)))]
    rows.append(as_row("dlib chips jittered (6 fixed jitters + the plain chip) averaged", score(
        protocol, ensemble_of(raw, jitters, ["colour"]), row_of, settings, "jitters")))
    children = {str(p.path) for p in cross_age}
    rows += whitening_rows(photos, children, protocol, default, settings)
    rows += projection_rows(photos, children, protocol, build_protocol(
        cross_age, distractors, "all"), default, row_of, settings)
    rows.append(chip_chosen_on_other_people(
        protocol, {"default": default, **chip_vectors}, row_of, settings))
    rows += case_fusion_rows(cross_age, distractors, default, row_of, settings)
    return rows


def views_of(photos: Sequence[LabelledPhoto], protocol: Protocol, paths: NDArray[np.str_],
             cache: Path | None, settings: Settings) -> dict[str, NDArray[np.float32]]:
    """Every view's descriptors of every photo: from the cache when it holds them, else
    embedded (and written to the cache, when one is named)."""
    if cache and cache.is_file():
        cached = np.load(cache)
        if not np.array_equal(cached["paths"], paths):
            raise StaleCache(f"{cache} was made from other photos: delete it")
        if set(descriptor_keys()) - set(cached.files):
            raise StaleCache(f"{cache} lacks views this version embeds: delete it")
        return {k: cached[k] for k in cached.files if k != "paths"}
    raw = descriptors(photos, {str(p.path) for p in protocol_photos(protocol)}, settings)
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, paths=paths, **raw)  # type: ignore[arg-type]
    return raw


def chip_chosen_on_other_people(protocol: Protocol, candidates: dict[str, NDArray[np.float32]],
                                row_of: dict[str, int], settings: Settings) -> dict[str, Any]:
    """Would picking the best chip variant on some people help other people? For each fold,
    the variant (the default among them) with the most TPIR hits, then rank-1 hits, on the
    other folds' people is scored on this fold's people: compare with the per-fold baseline."""
    folds = [fold_protocol(protocol, f, FOLDS) for f in range(FOLDS)]
    hits = {label: [score(fold, vectors, row_of, settings, label) for fold in folds]
            for label, vectors in candidates.items()}

    def merit(label: str, fold: int) -> tuple[int, int]:
        others = [r for f, r in enumerate(hits[label]) if f != fold]
        return (sum(round(r.tpir_at_fpir_1pct * r.counts["sightings"]) for r in others),
                sum(round(r.rank1 * r.counts["sightings"]) for r in others))

    chosen = [max(candidates, key=lambda label: merit(label, fold)) for fold in range(FOLDS)]
    row = pooled("chip variant chosen on the other fold's people (best TPIR there), scored "
                 "per fold", [hits[label][fold] for fold, label in enumerate(chosen)])
    return {**row, "chosen": chosen}


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as markdown: every variant, then children told apart from children."""
    lines = ["| variant | rank-1 | rank-10 | TPIR @ FPIR 1% (hits) | rank-1 by gap | TPIR by gap |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        by_gap = [" / ".join(f"{x:.2f}" for x in row.get(k, [])) for k in
                  ("rank1_by_gap", "tpir_by_gap")]
        lines.append(f"| {row['variant']} | {row['rank1']:.3f} | {row['rank10']:.3f} | "
                     f"{row['tpir_at_fpir_1pct']:.3f} ({row['tpir_hits']:g}/{row['sightings']}) "
                     f"| {by_gap[0]} | {by_gap[1]} |")
    lines += ["", "Children told apart from children (sightings against every case photo of the "
              "scored fold's children; threshold at 1% of the pairs of different children):", "",
              "| variant | mated pairs accepted (of) | pairs of different children |",
              "|---|---|---|"]
    for row in rows:
        if "children_pairs" in row:
            pairs = row["children_pairs"]
            lines.append(f"| {row['variant']} | {pairs['hits']:g} ({pairs['mated']:g}) | "
                         f"{pairs['different']:g} |")
    return "\n".join(lines)
