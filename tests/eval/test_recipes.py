"""The recipe comparison and the cross-fitted calibration never fit on a person they score."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.config import Settings
from matcher.eval.calibrate import category_gallery
from matcher.eval.crossfit import crossfit_folds
from matcher.eval.folds import fold_protocol, person_fold, protocol_people
from matcher.eval.recipes import (
    FOLDS,
    Candidate,
    DevPhotos,
    Transform,
    compare,
    read_dev_photos,
    regimes,
)
from tests.data import require_test_data


@pytest.fixture(scope="module")
def dev() -> DevPhotos:
    """Every dev photo with a seeded stand-in vector: what is checked here is who is fitted
    on, not how well (docs/accuracy.md measures that on the real vectors)."""
    photos = read_dev_photos(require_test_data())
    vectors = np.random.default_rng(0).normal(size=(len(photos), 8)).astype(np.float32)
    return DevPhotos(photos, vectors, "stand-in", 1.0)


def test_no_recipe_is_fitted_on_a_person_it_is_scored_on(dev: DevPhotos) -> None:
    fitted_on: list[set[str]] = []

    def probe(x: np.ndarray, who: list[str]) -> Transform:
        fitted_on.append(set(who))
        return lambda v: v

    splits = 2
    [plain, probed] = compare(dev, [Candidate("plain", None), Candidate("probe", probe)],
                              Settings(), splits)
    assert len(fitted_on) == splits * FOLDS
    for call, people in enumerate(fitted_on):
        split, fold = divmod(call, FOLDS)
        for protocol in regimes(dev).values():
            scored = protocol_people(fold_protocol(protocol, fold, FOLDS, split))
            assert scored and not people & scored
        # Everyone outside the fold is fitted on: nothing is left out but the scored.
        assert people == {p.identity for p in dev.photos
                          if person_fold(p.identity, FOLDS, split) != fold}
    # A probe that changes nothing scores as the plain vectors do.
    for regime, reports in plain.reports.items():
        assert [r.rank1 for r in reports] == [r.rank1 for r in probed.reports[regime]]


def test_cross_fitted_calibration_measures_each_pair_by_a_fit_without_either_person(
        dev: DevPhotos) -> None:
    children = regimes(dev)["children"]
    gallery = category_gallery(children, "child", distractors_of_category=True)
    searches = [s.photo for s in children.sightings] + children.probes
    folds = crossfit_folds(dev.photos, gallery, searches)
    measured = [{p.identity for p in (*f.gallery, *f.searches)} for f in folds]
    for fold, people in zip(folds, measured, strict=True):
        assert people and not people & {p.identity for p in fold.fitted}
    # Every pair of the protocol is measured in exactly one fold.
    assert sum(len(f.gallery) for f in folds) == len(gallery)
    assert sum(len(f.searches) for f in folds) == len(searches)
    assert not measured[0] & measured[1]
