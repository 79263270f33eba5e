"""The ablation behind docs/accuracy-2026-11.md, "Tried and not kept": variants of the default
model on the cross-age dev protocol, each scored by the same index and metrics as `matcher eval`.

    .venv/bin/python scripts/ablate_crossage.py [--cache bench-out/ablation.npz] [--json]

Every photo's largest face is detected and aligned once, as the default pipeline does; its chips
are then embedded as they are and in a few variants (grayscale, contrast-stretched, CLAHE,
SFace chips at 0.95 / 1.05 of the template's scale, dlib chips cut around jittered landmarks),
each flip-averaged like the default; views are combined by averaging their unit-length
descriptors. Rows:
* the default (must equal `matcher eval`'s figures: a check that the harness measures the same);
* chip variants, replacing the colour chip or averaged with it, for both networks or one;
* cases with every photo up to age 12 (`--case-photos all`): the case ranked by its best face
  (the service's), by the mean of its two closest faces, or by one template per case: the
  mean descriptor, or the mean weighted by the quality of each photo's face (the detector's
  confidence, the face's width, the chip's sharpness);
* within-class whitening and LDA, fitted person-disjoint (2 folds by a hash of the person:
  fitted on one fold's people, scored on a protocol of the other fold's people only), on every
  dev person, children only (FG-NET) or adults only (LFW); the baseline row scores the same
  fold protocols;
* the learned projection (matcher.embed.projection), by either recipe (the softmax one, the
  PLDA distance), in 5 independent person-disjoint splits: the fixed recipe fitted on
  everyone, on adults or on children only, and a recipe chosen by inner folds of the fitting
  people only; the fixed recipes also on cases with every photo up to 12; a second table
  tells children from children alone;
* whether choosing a chip variant generalises: chosen on one fold's people, scored on the other's.
Deterministic; about 20 minutes on 2 cores (x86_64), 5 with --cache after the first run.
Needs the research photos (MATCHER_TEST_DATA or ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

import matcher  # noqa: F401  sets OMP_WAIT_POLICY before torch loads libgomp
from matcher.bench.machine import describe_machine
from matcher.config import Settings
from matcher.embed import load_pipeline, sface
from matcher.embed.embedder import EnsembleEmbedder, average_views, combine, l2_normalise
from matcher.embed.image import load_image
from matcher.embed.projection import PldaRecipe, Recipe, fit_projection
from matcher.embed.types import FaceQuality
from matcher.eval.crossage import (
    CrossAgeReport,
    evaluate_vectors,
    largest_faces,
    protocol_photos,
)
from matcher.eval.folds import check_disjoint, fitting_photos, fold_protocol
from matcher.eval.manifest import LabelledPhoto, read_manifest, research_data_dir
from matcher.eval.protocol import GAP_BANDS, Protocol, build_protocol
from matcher.eval.whitening import Whitening, fit_lda, fit_whitening
from matcher.index import best, mean_top2

Chips = NDArray[np.uint8]
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
FOLDS = 2
SHRINKAGES = (0.1, 1.0, 10.0)
LDA = ((1.0, 128), (10.0, 128))  # (shrinkage, directions kept)
LDA_FIT_SETS = ("every dev person", "adults only (LFW)")
SPLITS = 5  # independent person-disjoint splits for the projection (split 0: the folds above)
INNER_SPLIT = 100  # inner splits (choosing a recipe) are numbered apart from the outer ones
RECIPES = tuple(Recipe(steps=steps, decay=decay)
                for decay in (0.0, 0.01, 0.1) for steps in (100, 300))
PLDA_RECIPES = tuple(PldaRecipe(shrinkage=s) for s in SHRINKAGES)
SFACE_SCALES = (0.95, 1.05)
# dlib chip jitters (scale, degrees, sideways shift): each averaged with the plain chip.
DLIB_JITTERS = ((0.95, 0.0, 0.0), (1.05, 0.0, 0.0), (1.0, -4.0, 0.0), (1.0, 4.0, 0.0),
                (1.0, 0.0, -0.03), (1.0, 0.0, 0.03))


def gray(chips: Chips) -> Chips:
    luma = np.rint(chips.astype(np.float32) @ LUMA).clip(0, 255).astype(np.uint8)
    return np.repeat(luma[..., None], 3, axis=-1)


def stretch(chips: Chips) -> Chips:
    """Each chip's luminance 1st..99th percentile stretched to 0..255 (all channels alike)."""
    out = []
    for chip in chips.astype(np.float32):
        low, high = np.percentile(chip @ LUMA, (1, 99))
        out.append(np.rint((chip - low) * (255 / max(high - low, 1.0))).clip(0, 255))
    return np.stack(out).astype(np.uint8)


def clahe(chips: Chips) -> Chips:
    """Contrast-limited adaptive histogram equalisation of the lightness (clip 2, 4x4 tiles)."""
    equaliser = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
    out = []
    for chip in chips:
        lab = cv2.cvtColor(np.ascontiguousarray(chip), cv2.COLOR_RGB2LAB)
        lab[..., 0] = equaliser.apply(lab[..., 0])
        out.append(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))
    return np.stack(out)


CHIP_VARIANTS: dict[str, Callable[[Chips], Chips]] = {
    "gray": gray, "stretch": stretch, "clahe": clahe}


def scaled_sface_chip(image: NDArray[np.uint8], keypoints: NDArray[np.float32], scale: float
                      ) -> Chips:
    """SFace's chip zoomed by `scale` about the template's centre (scale > 1: a tighter crop)."""
    centre = sface.ARCFACE_TEMPLATE.mean(axis=0)
    to_chip = np.vstack([sface.arcface_transform(keypoints), [0.0, 0.0, 1.0]])
    zoom = np.array([[scale, 0.0, (1 - scale) * centre[0]],
                     [0.0, scale, (1 - scale) * centre[1]], [0.0, 0.0, 1.0]])
    return sface.warp_affine(image, (zoom @ to_chip)[:2], sface.CHIP_SIZE)[None]


def jittered(landmarks: NDArray[np.float32], scale: float, degrees: float, shift: float
             ) -> NDArray[np.float32]:
    """dlib's 5 landmarks moved by a similarity about their centre: scaled, rotated, and shifted
    sideways by `shift` x their width. The chip cut around them is zoomed, turned and moved the
    opposite way: a fixed stand-in for dlib's random num_jitters."""
    centre = landmarks.mean(axis=0)
    turn = np.radians(degrees)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    width = float(np.ptp(landmarks[:, 0]))
    moved = (landmarks - centre) @ (scale * rotation).T + centre + [shift * width, 0.0]
    return moved.astype(np.float32)


def descriptor_keys() -> list[str]:
    """The views embedded: network/variant."""
    keys = [f"{net}/{v}" for net in ("dlib", "sface") for v in ("colour", *CHIP_VARIANTS)]
    keys += [f"sface/scale{s}" for s in SFACE_SCALES]
    return keys + [f"dlib/jitter{n}" for n in range(len(DLIB_JITTERS))]


def descriptors(photos: Sequence[LabelledPhoto], variant_photos: set[str], settings: Settings
                ) -> dict[str, NDArray[np.float32]]:
    """Each network's descriptor (flip-averaged, unit length) of every photo's largest face,
    (N, 128) per network and chip variant; NaN where no face was found or the variant was not
    run (variants run only on `variant_photos`, the protocol's)."""
    pipeline = load_pipeline(settings)
    ensemble = pipeline.embedder
    if not isinstance(ensemble, EnsembleEmbedder):
        raise TypeError("the ablation starts from the dlib+sface ensemble")
    networks = {"dlib": ensemble.dlib.embed, "sface": ensemble.sface.embed}
    out = {k: np.full((len(photos), 128), np.nan, np.float32) for k in descriptor_keys()}
    batch = settings.detect_batch_size
    for start in range(0, len(photos), batch):
        chunk = photos[start : start + batch]
        images = [load_image(p.path.read_bytes(), max_bytes=settings.max_image_bytes,
                             max_pixels=settings.max_image_pixels) for p in chunk]
        for i, photo, image, found in zip(range(start, start + len(chunk)), chunk, images,
                                          pipeline.detect(images), strict=True):
            if not found:
                continue
            largest = max(found, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
            aligned = ensemble.align(image, [largest], pipeline.detector)
            variants = str(photo.path) in variant_photos
            for (net, embed), chips in zip(networks.items(), aligned.chips, strict=True):
                out[f"{net}/colour"][i] = embed(chips)[0]
                for name, change in CHIP_VARIANTS.items() if variants else ():
                    out[f"{net}/{name}"][i] = embed(change(chips))[0]
            for n, jitter in enumerate(DLIB_JITTERS if variants else ()):
                moved = jittered(aligned.landmarks[0], *jitter)
                out[f"dlib/jitter{n}"][i] = networks["dlib"](
                    ensemble.dlib.chips(image, moved[None]))[0]
            keypoints = np.asarray(largest.keypoints, np.float32).reshape(5, 2)
            for scale in SFACE_SCALES if variants else ():
                out[f"sface/scale{scale}"][i] = networks["sface"](
                    scaled_sface_chip(image, keypoints, scale))[0]
        print(f"embedded {min(start + batch, len(photos))}/{len(photos)}", file=sys.stderr)
    return out


def chip_variants() -> list[tuple[str, list[str], list[str]]]:
    """(label, dlib's views, SFace's views) of each chip variant measured."""
    return [row for name in CHIP_VARIANTS for row in (
        (f"{name} chips, both networks", [name], [name]),
        (f"colour + {name} chips averaged, both networks", ["colour", name], ["colour", name]),
        (f"{name} chips for dlib only", [name], ["colour"]),
        (f"{name} chips for SFace only", ["colour"], [name]),
    )]


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


def ensemble_of(raw: dict[str, NDArray[np.float32]], dlib_views: Sequence[str],
                sface_views: Sequence[str]) -> NDArray[np.float32]:
    """The default's vector (1:1) from each network's named views, averaged."""
    def part(net: str, views: Sequence[str]) -> NDArray[np.float32]:
        return average_views(np.stack([raw[f"{net}/{v}"] for v in views]))

    return combine(part("dlib", dlib_views), part("sface", sface_views), 0.5)


def as_row(label: str, report: CrossAgeReport) -> dict[str, Any]:
    return {"variant": label, "rank1": report.rank1, "rank10": report.rank10,
            "tpir_at_fpir_1pct": report.tpir_at_fpir_1pct,
            "tpir_hits": round(report.tpir_at_fpir_1pct * report.counts["sightings"]),
            "sightings": report.counts["sightings"],
            "rank1_by_gap": [report.by_gap[b]["rank1"] for b in GAP_BANDS],
            "tpir_by_gap": [report.by_gap[b]["tpir_at_fpir_1pct"] for b in GAP_BANDS]}


def score(protocol: Protocol, vectors: NDArray[np.float32], row_of: dict[str, int],
          settings: Settings, label: str) -> CrossAgeReport:
    return evaluate_vectors(protocol, _protocol_vectors(protocol, vectors, row_of), settings,
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


def whitening_rows(photos: Sequence[LabelledPhoto], children: set[str], protocol: Protocol,
                   vectors: NDArray[np.float32], settings: Settings) -> list[dict[str, Any]]:
    row_of = {str(p.path): i for i, p in enumerate(photos)}
    fold_protocols = [fold_protocol(protocol, f, FOLDS) for f in range(FOLDS)]
    rows = [pooled("default, scored per fold (baseline of the rows below)",
                   [score(p, vectors, row_of, settings, "default") for p in fold_protocols])]
    fit_sets: dict[str, Callable[[LabelledPhoto], bool]] = {
        "every dev person": lambda p: True,
        "children only (FG-NET)": lambda p: str(p.path) in children,
        "adults only (LFW)": lambda p: str(p.path) not in children}
    fits: list[tuple[str, Callable[[NDArray[np.float32], list[str]], Whitening]]] = [
        (f"whitening fitted on {{}}, shrinkage {shrinkage}",
         lambda x, who, shrinkage=shrinkage: fit_whitening(x, who, shrinkage))
        for shrinkage in SHRINKAGES]
    fits += [(f"LDA ({dims} of {vectors.shape[1]} directions) fitted on {{}}, shrinkage "
              f"{shrinkage}", lambda x, who, s=shrinkage, d=dims: fit_lda(x, who, s, d))
             for shrinkage, dims in LDA]
    for label, fit in fits:
        for fit_name, chosen in fit_sets.items():
            if label.startswith("LDA") and fit_name not in LDA_FIT_SETS:
                continue
            reports = []
            for fold, scored in enumerate(fold_protocols):
                fitted = [p for p in fitting_photos(photos, fold, FOLDS) if chosen(p)
                          and not np.isnan(vectors[row_of[str(p.path)]]).any()]
                check_disjoint(fitted, scored)
                mapping = fit(vectors[[row_of[str(p.path)] for p in fitted]],
                              [p.identity for p in fitted])
                reports.append(score(scored, mapped(vectors, mapping.apply), row_of, settings,
                                     "learned"))
            rows.append(pooled(label.format(fit_name), reports))
    return rows


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


def projection_rows(photos: Sequence[LabelledPhoto], children: set[str], protocol: Protocol,
                    protocol_all: Protocol,
                    vectors: NDArray[np.float32], row_of: dict[str, int], settings: Settings
                    ) -> list[dict[str, Any]]:
    """The learned projection (matcher.embed.projection), fitted on every photo of one fold's
    people (children and adults), scored on the other fold's, in several independent person-
    disjoint splits: with the fixed recipe (also fitted on the adults or the children alone;
    also scored on cases with every photo up to 12, `protocol_all`), and with the recipe chosen
    by inner person-disjoint folds of the fitting people only (what choosing a recipe on data
    gives), for each method: the softmax projection and the PLDA distance."""
    def usable(chosen: Sequence[LabelledPhoto]) -> list[LabelledPhoto]:
        return [p for p in chosen if not np.isnan(vectors[row_of[str(p.path)]]).any()]

    def projected(fitted: Sequence[LabelledPhoto], recipe: Recipe | PldaRecipe
                  ) -> NDArray[np.float32]:
        # Scored by rank and FPIR only: the model id and carried-over threshold do not matter.
        fit = fit_projection(vectors[[row_of[str(p.path)] for p in fitted]],
                             [p.identity for p in fitted], "ablation", 1.0, recipe)
        return mapped(vectors, fit.apply)

    def hits(report: CrossAgeReport) -> tuple[int, int]:
        n = report.counts["sightings"]
        return round(report.tpir_at_fpir_1pct * n), round(report.rank1 * n)

    def chosen_recipe(fitted: list[LabelledPhoto], inner: Protocol, split: int,
                      recipes: Sequence[Recipe | PldaRecipe]) -> Recipe | PldaRecipe:
        merit = {}
        for recipe in recipes:
            total = np.zeros(2, int)
            for fold in range(FOLDS):
                scored = fold_protocol(inner, fold, FOLDS, INNER_SPLIT + split)
                fitting = fitting_photos(fitted, fold, FOLDS, INNER_SPLIT + split)
                check_disjoint(fitting, scored)
                total += hits(score(scored, projected(fitting, recipe), row_of, settings, "in"))
            merit[recipe] = tuple(total)
        return max(recipes, key=lambda recipe: merit[recipe])

    methods: dict[str, tuple[Recipe | PldaRecipe, Sequence[Recipe | PldaRecipe]]] = {
        "softmax projection": (Recipe(), RECIPES),
        "PLDA distance": (PldaRecipe(), PLDA_RECIPES)}
    labels = {"base": "default, scored per fold"}
    for method in methods:
        labels |= {f"{method}/fixed": f"{method}, fixed recipe",
                   f"{method}/adults": f"{method}, fixed recipe, fitted on adults (LFW) only",
                   f"{method}/children":
                       f"{method}, fixed recipe, fitted on children (FG-NET) only",
                   f"{method}/chosen": f"{method}, recipe chosen on the fitting people"}
    # The fixed recipes also on cases with every photo up to 12, ranked by their best face.
    on_all = ["base", *(f"{method}/fixed" for method in methods)]
    labels |= {f"{name}@all": f"{labels[name]}, every photo to 12" for name in on_all}
    rows = []
    for split in range(SPLITS):
        reports: dict[str, list[CrossAgeReport]] = {name: [] for name in labels}
        pairs: dict[str, list[dict[str, int]]] = {name: [] for name in labels}
        chosen: dict[str, list[dict[str, Any]]] = {method: [] for method in methods}
        for fold in range(FOLDS):
            scored = fold_protocol(protocol, fold, FOLDS, split)
            fitted = usable(fitting_photos(photos, fold, FOLDS, split))
            check_disjoint(fitted, scored)
            fit_sets = {"fixed": fitted,
                        "adults": [p for p in fitted if str(p.path) not in children],
                        "children": [p for p in fitted if str(p.path) in children]}
            variants = {"base": vectors}
            for method, (fixed, recipes) in methods.items():
                variants |= {f"{method}/{who}": projected(chosen_photos, fixed)
                             for who, chosen_photos in fit_sets.items()}
                recipe = chosen_recipe(fitted, fold_protocol(protocol, 1 - fold, FOLDS, split),
                                       split, recipes)
                chosen[method].append(asdict(recipe))
                variants[f"{method}/chosen"] = projected(fitted, recipe)
            for name, vectors_now in variants.items():
                reports[name].append(score(scored, vectors_now, row_of, settings, name))
                pairs[name].append(children_pairs(scored, vectors_now, row_of))
            scored_all = fold_protocol(protocol_all, fold, FOLDS, split)
            check_disjoint(fitted, scored_all)
            for name in on_all:
                reports[f"{name}@all"].append(score(scored_all, variants[name], row_of,
                                                    settings, name))
        for name, label in labels.items():
            row = pooled(f"split {split}: {label}", reports[name])
            if pairs[name]:
                row["children_pairs"] = {k: sum(p[k] for p in pairs[name])
                                         for k in pairs[name][0]}
            if name.endswith("/chosen"):
                row["recipes"] = chosen[name.split("/")[0]]
            rows.append(row)
    for offset, label in enumerate(labels.values()):
        per_split = rows[offset::len(labels)]
        rows.append({"variant": f"mean of the {SPLITS} splits: {label}",
                     "sightings": per_split[0]["sightings"],
                     **{key: float(np.mean([r[key] for r in per_split]))
                        for key in ("rank1", "rank10", "tpir_at_fpir_1pct", "tpir_hits")},
                     **{key: np.mean([r[key] for r in per_split], axis=0).tolist()
                        for key in ("rank1_by_gap", "tpir_by_gap")}})
        if "children_pairs" in per_split[0]:
            rows[-1]["children_pairs"] = {
                k: float(np.mean([r["children_pairs"][k] for r in per_split]))
                for k in per_split[0]["children_pairs"]}
    return rows


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
        protocol, _protocol_vectors(protocol, vectors, row_of), settings, name,
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
        template_vectors = _protocol_vectors(templates, vectors, row_of)
        for n, photos in enumerate(photos_of.values()):
            found = [(v, weight(q)) for p, v in zip(
                photos, _protocol_vectors_of(photos, vectors, row_of), strict=True)
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


def _protocol_vectors_of(photos: Sequence[LabelledPhoto], vectors: NDArray[np.float32],
                         row_of: dict[str, int]) -> list[NDArray[np.float32] | None]:
    rows = [vectors[row_of[str(p.path)]] for p in photos]
    return [None if np.isnan(v).any() else v for v in rows]


def _protocol_vectors(protocol: Protocol, vectors: NDArray[np.float32], row_of: dict[str, int]
                      ) -> list[NDArray[np.float32] | None]:
    return _protocol_vectors_of(protocol_photos(protocol), vectors, row_of)


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    print("| variant | rank-1 | rank-10 | TPIR @ FPIR 1% (hits) | rank-1 by gap | TPIR by gap |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        by_gap = [" / ".join(f"{x:.2f}" for x in row.get(k, [])) for k in
                  ("rank1_by_gap", "tpir_by_gap")]
        print(f"| {row['variant']} | {row['rank1']:.3f} | {row['rank10']:.3f} | "
              f"{row['tpir_at_fpir_1pct']:.3f} ({row['tpir_hits']:g}/{row['sightings']}) | "
              f"{by_gap[0]} | {by_gap[1]} |")
    among_children = [row for row in rows if "children_pairs" in row]
    print("\nChildren told apart from children (sightings against every case photo of the "
          "scored fold's children; threshold at 1% of the pairs of different children):\n")
    print("| variant | mated pairs accepted (of) | pairs of different children |")
    print("|---|---|---|")
    for row in among_children:
        pairs = row["children_pairs"]
        print(f"| {row['variant']} | {pairs['hits']:g} ({pairs['mated']:g}) | "
              f"{pairs['different']:g} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    data = research_data_dir()
    parser.add_argument("--cross-age", type=Path, default=data / "fgnet-dev/manifest.csv")
    parser.add_argument("--distractors", type=Path, default=data / "lfw-dev/manifest.csv")
    parser.add_argument("--cache", type=Path, help="npz of the descriptors, reused if present: "
                        "delete it after changing the pipeline")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    settings = Settings(embedder="dlib+sface", embed_flip=True, ensemble_sface_weight=0.5,
                        projection_file="none")
    cross_age = read_manifest(args.cross_age, require_age=True)
    distractors = read_manifest(args.distractors)
    photos = cross_age + distractors  # every photo: whitening fits on them
    protocol = build_protocol(cross_age, distractors)
    paths = np.array([str(p.path) for p in photos])
    if args.cache and args.cache.is_file():
        cached = np.load(args.cache)
        if not np.array_equal(cached["paths"], paths):
            sys.exit(f"{args.cache} was made from other photos: delete it")
        if set(descriptor_keys()) - set(cached.files):
            sys.exit(f"{args.cache} lacks views this version embeds: delete it")
        raw = {k: cached[k] for k in cached.files if k != "paths"}
    else:
        raw = descriptors(photos, {str(p.path) for p in protocol_photos(protocol)}, settings)
        if args.cache:
            args.cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(args.cache, paths=paths, **raw)  # type: ignore[arg-type]

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

    machine = describe_machine()
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}))
    else:
        print(f"machine: {machine}")
        print_table(rows)


if __name__ == "__main__":
    main()
