"""Learned post-processing is fitted on some people and scored on others only (issue 8): the
fold split of the real dev protocol, and the check that refuses a leaky one."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.eval.folds import (
    FoldLeak,
    check_disjoint,
    fitting_photos,
    fold_protocol,
    person_fold,
    protocol_people,
)
from matcher.eval.manifest import LabelledPhoto, read_manifest
from matcher.eval.protocol import Protocol, build_protocol
from tests.data import require_test_data

FOLDS = 2


def dev_photos() -> tuple[list[LabelledPhoto], Protocol]:
    data = require_test_data()
    cross_age = read_manifest(data / "fgnet-dev" / "manifest.csv", require_age=True)
    distractors = read_manifest(data / "lfw-dev" / "manifest.csv")
    return cross_age + distractors, build_protocol(cross_age, distractors)


def test_no_person_is_both_fitted_on_and_scored() -> None:
    photos, protocol = dev_photos()
    for fold in range(FOLDS):
        scored = fold_protocol(protocol, fold, FOLDS)
        fitted = fitting_photos(photos, fold, FOLDS)
        check_disjoint(fitted, scored)  # raises FoldLeak otherwise
        assert not {p.identity for p in fitted} & protocol_people(scored)
        # Both sides are real: children to search for, adults to set the threshold, people
        # with several photos to fit on.
        assert scored.sightings and scored.cases and scored.probes and scored.distractors
        assert len({p.identity for p in fitted}) > 100


def test_the_folds_split_the_protocol_without_losing_or_repeating_anyone() -> None:
    _, protocol = dev_photos()
    parts = [fold_protocol(protocol, fold, FOLDS) for fold in range(FOLDS)]
    for field in ("cases", "distractors", "probes"):
        together = [p.path for part in parts for p in getattr(part, field)]
        assert sorted(together) == sorted(p.path for p in getattr(protocol, field))
    sightings = [s.photo.path for part in parts for s in part.sightings]
    assert sorted(sightings) == sorted(s.photo.path for s in protocol.sightings)
    assert not protocol_people(parts[0]) & protocol_people(parts[1])


def test_a_leaky_split_is_refused() -> None:
    photos, protocol = dev_photos()
    scored = fold_protocol(protocol, 0, FOLDS)
    # Fitting on everyone (the mistake the check exists for) puts the scored people in both.
    with pytest.raises(FoldLeak, match="both fitted on and scored"):
        check_disjoint(photos, scored)
    # One sighting's person slipped into the fitting photos is enough.
    leaked = fitting_photos(photos, 0, FOLDS) + [scored.sightings[0].photo]
    with pytest.raises(FoldLeak):
        check_disjoint(leaked, scored)


def test_a_person_always_lands_in_the_same_fold() -> None:
    assert {person_fold("Ada_Lovelace", 2) for _ in range(3)} == {person_fold("Ada_Lovelace", 2)}
    assert {person_fold(f"person {n}", 2) for n in range(50)} == {0, 1}
    with pytest.raises(ValueError, match="at least 2 folds"):
        person_fold("anyone", 1)


def test_other_splits_are_person_disjoint_and_independent_of_the_first() -> None:
    photos, protocol = dev_photos()
    people = sorted({p.identity for p in photos})
    first = [person_fold(p, FOLDS) for p in people]
    for split in (1, 2, 3, 4):
        for fold in range(FOLDS):
            check_disjoint(fitting_photos(photos, fold, FOLDS, split),
                           fold_protocol(protocol, fold, FOLDS, split))
        other = [person_fold(p, FOLDS, split) for p in people]
        # Neither the same split nor its mirror image: about half the people change sides.
        agree = np.mean(np.array(first) == np.array(other))
        assert 0.4 < agree < 0.6
