"""A calibration on any model's distance scale: the grid reaches past every measured pair (a
PLDA projection's distances lie around 10, not under 1.5), rates are never understated by the
grid or below one pair's worth, and files carry the model in their name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from matcher.calibration import (
    Calibration,
    CalibrationError,
    calibration_path,
    fit,
    load,
    load_for_model,
)
from matcher.embed.embedder import l2_normalise
from matcher.embed.projection import PldaRecipe, fit_projection
from matcher.eval.calibrate import non_mated_distances


def _plda_distances() -> tuple[str, np.ndarray]:
    """Non-mated distances of a PLDA projection fitted on seeded clustered vectors: one
    gallery and one search face per person, 80 people."""
    rng = np.random.default_rng(0)
    people, per, dim = 80, 5, 128
    centres = l2_normalise(rng.normal(size=(people, dim)).astype(np.float32))
    noise = 0.08 * rng.normal(size=(people * per, dim)).astype(np.float32)
    x = l2_normalise(np.repeat(centres, per, 0) + noise)
    who = [f"p{i}" for i in range(people) for _ in range(per)]
    projection = fit_projection(x, who, "base", base_same_person_distance=0.9,
                                recipe=PldaRecipe())
    y = projection.apply(x)
    distances = non_mated_distances(y[::per], who[::per], y[1::per], who[1::per])
    return projection.model_id, np.sort(distances.astype(np.float64))


def test_a_projection_far_beyond_unit_distances_is_calibrated_over_its_whole_range() -> None:
    model, distances = _plda_distances()
    assert distances[0] > 1.5  # the old grid's end: everything beyond it read as FMR 0
    calibration = fit(model, "child", distances, searches=80, gallery_faces=80)
    assert calibration.grid[-1] >= distances[-1] and calibration.fmr[-1] == 1.0
    median = float(np.median(distances))
    assert float(calibration.false_match_rate(median)) == pytest.approx(0.5, abs=0.02)
    assert float(calibration.expected_false(median, 1000)) == pytest.approx(500, rel=0.05)
    # A target turns into a distance on the model's own scale, and keeps it.
    for target, faces in ((0.5, 10), (5.0, 100), (40.0, 100)):
        threshold = calibration.threshold_for(target, faces)
        assert distances[0] <= threshold < distances[-1]
        assert float(calibration.expected_false(threshold, faces)) <= target
        empirical = float((distances <= threshold).mean()) * faces
        assert empirical <= target


def test_rates_are_rounded_up_and_floored_at_one_pair() -> None:
    rng = np.random.default_rng(0)
    distances = np.sort(rng.uniform(0.5, 1.0, 23_881))
    calibration = fit("m", "child", distances, searches=617, gallery_faces=39)
    one_pair = 1 / distances.size
    assert calibration.resolution == one_pair
    # Below the closest pair: one pair's worth, not zero (zero only at distance 0).
    for d in (0.3, 0.49, 0.5):  # the closest pair is at 0.50002
        assert float(calibration.false_match_rate(d)) == one_pair
    assert float(calibration.false_match_rate(0.0)) == 0.0
    # Between grid points a rate is the next point's: never under the measured share.
    probes = np.concatenate([[0.7024, 0.7001], rng.uniform(0.45, 1.05, 500)])
    step = calibration.grid[1] - calibration.grid[0]
    rates = calibration.false_match_rate(probes)
    measured = np.searchsorted(distances, probes, side="right") / distances.size
    above = np.searchsorted(distances, probes + step, side="right") / distances.size
    assert np.all(rates >= np.maximum(measured, one_pair))
    assert np.all(rates <= np.maximum(above, one_pair))
    assert float(calibration.false_match_rate(0.7024)) >= float((distances <= 0.7024).mean())


def test_a_target_below_what_the_pairs_measure_is_taken_as_one_pair() -> None:
    distances = np.sort(np.random.default_rng(0).uniform(0.5, 1.0, 23_881))
    calibration = fit("m", "child", distances, searches=617, gallery_faces=39)
    faces = 100_000  # 0.01 per search is an FMR of 1e-7; one pair is 4.2e-5
    threshold = calibration.threshold_for(0.01, faces)
    assert threshold == calibration.threshold_for(faces / distances.size, faces)
    assert float(calibration.expected_false(threshold, faces)) == pytest.approx(
        faces / distances.size)
    assert float((distances <= threshold).sum()) <= 1  # at most the one pair it stands for


def test_distances_that_are_not_distances_are_refused() -> None:
    good = np.random.default_rng(0).uniform(0.5, 1.0, 5_000)
    for bad in (np.nan, np.inf, -0.1):
        with pytest.raises(CalibrationError, match="not finite non-negative"):
            fit("m", "child", np.append(good, bad), searches=10, gallery_faces=10)


def test_a_table_that_stops_short_of_the_pairs_is_refused(tmp_path: Path) -> None:
    # What the old fixed grid (0 to 1.5) wrote for a PLDA model: every rate 0.
    grid = np.round(np.arange(0, 1.5 + 0.00125, 0.0025), 6).tolist()
    short = Calibration("plda", "child", grid, [0.0] * len(grid), pairs=6320, searches=80,
                        gallery_faces=80)
    short.save(tmp_path / "child.json")
    with pytest.raises(CalibrationError, match="run `matcher calibrate` again"):
        load(tmp_path / "child.json")
    assert load_for_model(tmp_path, "plda") == {}


def test_each_model_has_its_own_file_and_old_names_are_still_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)

    def made(model: str, category: str = "child") -> Calibration:
        return fit(model, category, rng.uniform(0.3, 1.3, 2_000), searches=1, gallery_faces=1)

    served, other = "dlib-resnet-v1-flip", "dlib-resnet-v1-flip+sface-2021dec-flip-w0.50"
    assert calibration_path(tmp_path, "child", served) != calibration_path(tmp_path, "child",
                                                                           other)
    mine, theirs = made(served), made(other)
    mine.save(calibration_path(tmp_path, "child", served))
    theirs.save(calibration_path(tmp_path, "child", other))
    assert load_for_model(tmp_path, served) == {"child": mine}
    assert load_for_model(tmp_path, other) == {"child": theirs}
    # A file an older version named `<category>.json` counts for the model it states, and a
    # file named for the model wins over it.
    legacy_any, legacy_child = made(served, "any"), made(served)
    legacy_any.save(calibration_path(tmp_path, "any"))
    assert json.loads(calibration_path(tmp_path, "any").read_text())["model_id"] == served
    legacy_child.save(tmp_path / "child.json")
    assert load_for_model(tmp_path, served) == {"child": mine, "any": legacy_any}
