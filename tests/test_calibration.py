"""The calibration file and its arithmetic: rates per distance, thresholds from targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from matcher.calibration import Calibration, CalibrationError, fit, load, load_for_model


def _calibration(
    model: str = "m1", category: str = "child", seed: int = 0
) -> tuple[Calibration, NDArray[np.float64]]:
    distances = np.random.default_rng(seed).normal(0.8, 0.1, 20_000)
    return fit(model, category, distances, searches=200, gallery_faces=100), np.sort(distances)


def test_the_false_match_rate_is_the_share_of_pairs_at_or_under_a_distance() -> None:
    calibration, distances = _calibration()
    for d in (0.5, 0.6, 0.7, 0.8, 0.95):
        exact = np.searchsorted(distances, d, side="right") / distances.size
        assert float(calibration.false_match_rate(d)) == pytest.approx(exact, abs=1e-12)
    rates = calibration.false_match_rate(np.linspace(0, 1.5, 50))
    assert np.all(np.diff(rates) >= 0) and rates[0] == 0.0 and rates[-1] == 1.0
    assert float(calibration.expected_false(0.7, 1000)) == pytest.approx(
        1000 * float(calibration.false_match_rate(0.7)))


def test_a_target_gives_the_largest_distance_that_keeps_it() -> None:
    calibration, _ = _calibration()
    for faces in (100, 1_000):  # 0.05 per search at 1,000 faces: one pair of the 20,000
        t = calibration.threshold_for(0.05, faces)
        assert float(calibration.expected_false(t, faces)) <= 0.05
        assert float(calibration.expected_false(t + 0.0025, faces)) > 0.05
    # More faces searched, more chances of a stranger: the threshold tightens.
    assert calibration.threshold_for(0.05, 1_000) < calibration.threshold_for(0.05, 100)
    with pytest.raises(CalibrationError):
        calibration.threshold_for(0, 100)


def test_files_round_trip_and_other_models_are_ignored(tmp_path: Path) -> None:
    child, _ = _calibration("m1", "child")
    old, _ = _calibration("m0", "elderly")
    child.save(tmp_path / "child.json")
    old.save(tmp_path / "elderly.json")
    (tmp_path / "broken.json").write_text("{not json")
    assert load(tmp_path / "child.json") == child
    assert load_for_model(tmp_path, "m1") == {"child": child}
    assert load_for_model(tmp_path / "missing", "m1") == {}
    with pytest.raises(CalibrationError):
        load(tmp_path / "broken.json")
    with pytest.raises(CalibrationError, match="too few"):
        fit("m1", "child", np.ones(10), searches=1, gallery_faces=10)
