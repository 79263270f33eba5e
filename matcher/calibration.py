"""What a distance means: the rate of false matches per compared face, measured on people
known to be different (`matcher calibrate`), and what follows from it at a gallery's size.

A search compares the sighting face with every active case face (N of them). If one pair of
different people is closer than `d` with probability FMR(d), a search is expected to bring
N * FMR(d) false candidates closer than `d`. That number is what an investigator can weigh
("0.02 false candidates per search at this distance"), and a target for it gives the
threshold: the largest distance whose expected false candidates stay under the target.

Calibration files are JSON, one per model and category (children and elderly people can differ),
under `<data dir>/calibration/`; a file for another model is ignored (its distances mean
something else).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from matcher.files import write_atomic

log = logging.getLogger(__name__)

FORMAT = "matcher-calibration/1"
GRID_STEP = 0.0025
GRID_MAX = 1.5  # beyond the largest distance two unit-norm-ish dlib descriptors reach in practice


class CalibrationError(ValueError):
    """A calibration file is unreadable, of another format, or built from too little data."""


@dataclass(frozen=True)
class Calibration:
    model_id: str
    category: str  # "child", "elderly", or "any"
    grid: list[float]  # distances, ascending
    fmr: list[float]  # share of non-mated pairs at or under each grid distance
    pairs: int  # non-mated pairs measured
    searches: int  # probe faces they came from
    gallery_faces: int
    source: dict[str, Any] = field(default_factory=dict)  # manifests, split, date

    def false_match_rate(self, distance: ArrayLike) -> NDArray[np.float64]:
        """FMR at each distance (step-wise, never below one pair's worth when above zero)."""
        at = np.searchsorted(np.asarray(self.grid), np.asarray(distance, dtype=np.float64),
                             side="right") - 1
        rates = np.asarray(self.fmr, dtype=np.float64)
        return np.where(at >= 0, rates[np.clip(at, 0, len(rates) - 1)], 0.0)

    def expected_false(self, distance: ArrayLike, gallery_faces: int) -> NDArray[np.float64]:
        """Expected false candidates per search at least this close, at this gallery size."""
        return gallery_faces * self.false_match_rate(distance)

    def threshold_for(self, false_per_search: float, gallery_faces: int) -> float:
        """The largest grid distance whose expected false candidates per search stay at or
        under `false_per_search` with `gallery_faces` faces searched."""
        if false_per_search <= 0:
            raise CalibrationError("the target must be a positive number of false candidates")
        allowed = false_per_search / max(1, gallery_faces)
        under = np.flatnonzero(np.asarray(self.fmr) <= allowed)
        return float(self.grid[int(under[-1])]) if under.size else 0.0

    def save(self, path: Path) -> None:
        text = json.dumps({"format": FORMAT, **asdict(self)}).encode()
        write_atomic(path, lambda handle: handle.write(text))


def fit(model_id: str, category: str, non_mated: ArrayLike, searches: int, gallery_faces: int,
        source: dict[str, Any] | None = None) -> Calibration:
    """A calibration from the distances of non-mated pairs (different people)."""
    distances = np.sort(np.asarray(non_mated, dtype=np.float64).ravel())
    distances = distances[np.isfinite(distances)]
    if distances.size < 1000:
        raise CalibrationError(f"{distances.size} non-mated pairs are too few to calibrate")
    grid = np.round(np.arange(0.0, GRID_MAX + GRID_STEP / 2, GRID_STEP), 6)
    rates = np.searchsorted(distances, grid, side="right") / distances.size
    return Calibration(
        model_id=model_id, category=category, grid=grid.tolist(), fmr=rates.tolist(),
        pairs=int(distances.size), searches=searches, gallery_faces=gallery_faces,
        source={"created": dt.datetime.now(dt.UTC).isoformat(), **(source or {})},
    )


def load(path: Path) -> Calibration:
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CalibrationError(f"cannot read calibration {path}: {error}") from error
    if not isinstance(raw, dict) or raw.pop("format", None) != FORMAT:
        raise CalibrationError(f"{path} is not a {FORMAT} file")
    try:
        calibration = Calibration(**raw)
    except TypeError as error:
        raise CalibrationError(f"{path} lacks fields: {error}") from error
    if len(calibration.grid) != len(calibration.fmr) or not calibration.grid:
        raise CalibrationError(f"{path}: grid and rates differ in length")
    return calibration


def calibration_path(directory: Path, category: str) -> Path:
    return directory / f"{category}.json"


def load_for_model(directory: Path, model_id: str) -> dict[str, Calibration]:
    """The calibrations in `directory` made for `model_id`, by category."""
    found: dict[str, Calibration] = {}
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            calibration = load(path)
        except CalibrationError as error:
            log.warning("ignoring calibration: %s", error)
            continue
        if calibration.model_id != model_id:
            log.warning("ignoring calibration %s: made for model %s, running %s", path,
                        calibration.model_id, model_id)
            continue
        found[calibration.category] = calibration
    return found
