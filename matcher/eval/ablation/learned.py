"""Learned maps of the default's vectors, fitted person-disjoint and scored on the other
people: within-class whitening and LDA (2 folds by a hash of the person), and the learned
projection (matcher.embed.projection) by either recipe in several independent splits, with a
fixed recipe or one chosen by inner folds of the fitting people only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from matcher.config import Settings
from matcher.embed.projection import PldaRecipe, Recipe, fit_projection
from matcher.eval.ablation.scoring import FOLDS, children_pairs, mapped, pooled, score
from matcher.eval.crossage import CrossAgeReport
from matcher.eval.folds import check_disjoint, fitting_photos, fold_protocol
from matcher.eval.manifest import LabelledPhoto
from matcher.eval.protocol import Protocol
from matcher.eval.whitening import Whitening, fit_lda, fit_whitening

SHRINKAGES = (0.1, 1.0, 10.0)
LDA = ((1.0, 128), (10.0, 128))  # (shrinkage, directions kept)
LDA_FIT_SETS = ("every dev person", "adults only (LFW)")
SPLITS = 5  # independent person-disjoint splits for the projection (split 0: whitening's folds)
INNER_SPLIT = 100  # inner splits (choosing a recipe) are numbered apart from the outer ones
RECIPES = tuple(Recipe(steps=steps, decay=decay)
                for decay in (0.0, 0.01, 0.1) for steps in (100, 300))
PLDA_RECIPES = tuple(PldaRecipe(shrinkage=s) for s in SHRINKAGES)


def whitening_rows(photos: Sequence[LabelledPhoto], children: set[str], protocol: Protocol,
                   vectors: NDArray[np.float32], settings: Settings) -> list[dict[str, Any]]:
    """Within-class whitening and LDA, fitted on one fold's people (every dev person, children
    only or adults only) and scored on the other fold's; the first row, the baseline, scores
    the same fold protocols without a map."""
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
         partial(fit_whitening, shrinkage=shrinkage))
        for shrinkage in SHRINKAGES]
    fits += [(f"LDA ({dims} of {vectors.shape[1]} directions) fitted on {{}}, shrinkage "
              f"{shrinkage}", partial(fit_lda, shrinkage=shrinkage, dims=dims))
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


