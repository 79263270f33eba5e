"""What a distance means: the rate of false matches per compared face, measured on people
known to be different (`matcher calibrate`), and what follows from it at a gallery's size.

A search compares the sighting face with every active case face (N of them). If one pair of
different people is closer than `d` with probability FMR(d), a search is expected to bring
N * FMR(d) false candidates closer than `d`. That number is what an investigator can weigh
("0.02 false candidates per search at this distance"), and a target for it gives the
threshold: the largest distance whose expected false candidates stay under the target.

Calibration files are JSON, one per model and category (children and elderly people can differ),
under `<data dir>/calibration/`, named `<category>.<model id>.json` so that calibrating one model
never replaces another's; a file for another model is ignored (its distances mean something
else), and files named `<category>.json` by older versions are still read for the model they
state.

The table: FMR at each point of a grid of distances from 0 up to past the largest measured
distance, its step chosen from the model's own scale (0.0025 for unit-length descriptors, whose
distances stay under 2; coarser for a learned projection's distances around 10). A distance
between two grid points takes the rate at the next point up: a rate is never understated by
the rounding. Below the closest measured pair the rate is one pair's worth (1 / pairs), not
zero: the pairs cannot tell smaller rates apart.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from matcher.files import write_atomic

log = logging.getLogger(__name__)

FORMAT = "matcher-calibration/1"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._+-]")  # model ids are such already; a file name must be
GRID_STEP = 0.0025  # the finest step: unit-length descriptors (distances under 2) get this one
GRID_POINTS = 1000  # at most about this many steps up to the largest measured distance


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
        """FMR at each distance: the rate at the first grid point at or above it (rounded up,
        never down), and never below one pair's worth (1 / pairs) when above zero. Past the
        grid's end (which lies past every measured pair) it is 1."""
        d = np.asarray(distance, dtype=np.float64)
        rates = np.asarray(self.fmr, dtype=np.float64)
        at = np.searchsorted(np.asarray(self.grid), d, side="left")
        rate = np.where(at < len(rates), rates[np.clip(at, 0, len(rates) - 1)], 1.0)
        return np.where(d > 0, np.maximum(rate, self.resolution), rate)

    @property
    def resolution(self) -> float:
        """The smallest false match rate these pairs can state: one pair's worth."""
        return 1.0 / max(1, self.pairs)

    def expected_false(self, distance: ArrayLike, gallery_faces: int) -> NDArray[np.float64]:
        """Expected false candidates per search at least this close, at this gallery size."""
        return gallery_faces * self.false_match_rate(distance)

    def threshold_for(self, false_per_search: float, gallery_faces: int) -> float:
        """The largest grid distance whose expected false candidates per search stay at or
        under `false_per_search` with `gallery_faces` faces searched.

        A target below one pair's worth (`gallery_faces / pairs` false candidates per search)
        is beyond what the pairs can measure: it is taken as that, the closest distance the
        calibration can vouch for, rather than a distance claimed to hold a smaller rate."""
        if false_per_search <= 0:
            raise CalibrationError("the target must be a positive number of false candidates")
        allowed = max(false_per_search / max(1, gallery_faces), self.resolution)
        under = np.flatnonzero(np.asarray(self.fmr) <= allowed)
        return float(self.grid[int(under[-1])]) if under.size else 0.0

    def save(self, path: Path) -> None:
        text = json.dumps({"format": FORMAT, **asdict(self)}).encode()
        write_atomic(path, lambda handle: handle.write(text))


def grid_step(largest: float) -> float:
    """A round step (1, 2.5 or 5 times a power of ten, at least GRID_STEP) that reaches
    `largest` in at most about GRID_POINTS steps: the grid follows the model's scale."""
    wanted = largest / GRID_POINTS
    if wanted <= GRID_STEP:
        return GRID_STEP
    power = 10.0 ** math.floor(math.log10(wanted))
    return next(round(m * power, 12) for m in (1.0, 2.5, 5.0, 10.0) if m * power >= wanted)


def fit(model_id: str, category: str, non_mated: ArrayLike, searches: int, gallery_faces: int,
        source: dict[str, Any] | None = None) -> Calibration:
    """A calibration from the distances of non-mated pairs (different people), on a grid that
    reaches past the largest of them whatever the model's scale."""
    distances = np.sort(np.asarray(non_mated, dtype=np.float64).ravel())
    if distances.size and not (np.isfinite(distances[-1]) and distances[0] >= 0):
        bad = distances[~np.isfinite(distances) | (distances < 0)]
        raise CalibrationError(f"{bad.size} distances are not finite non-negative numbers "
                               f"(e.g. {bad[0]}): not distances between faces")
    if distances.size < 1000:
        raise CalibrationError(f"{distances.size} non-mated pairs are too few to calibrate")
    step = grid_step(float(distances[-1]))
    points = int(math.floor(distances[-1] / step)) + 2  # the last one past the largest
    grid = np.round(np.arange(points) * step, 6)
    rates = np.searchsorted(distances, grid, side="right") / distances.size
    if rates[-1] < 1.0:  # cannot happen with the extra point; never write a short table
        raise CalibrationError(f"the grid ends at {grid[-1]}, below the largest distance "
                               f"{distances[-1]}")
    return Calibration(
        model_id=model_id, category=category, grid=grid.tolist(), fmr=rates.tolist(),
        pairs=int(distances.size), searches=searches, gallery_faces=gallery_faces,
        source={"created": dt.datetime.now(dt.UTC).isoformat(),
                "largest_distance": float(distances[-1]), **(source or {})},
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
    if calibration.fmr[-1] < 1.0:
        # An older `matcher calibrate` stopped its grid at 1.5: for a model whose distances
        # lie beyond (a learned projection's), every rate is 0 and every threshold the
        # grid's end. Refuse it rather than serve that.
        raise CalibrationError(
            f"{path}: its grid ends at {calibration.grid[-1]} below the measured distances of "
            f"{calibration.model_id} (only {calibration.fmr[-1]:.1%} of the pairs): run "
            f"`matcher calibrate` again")
    return calibration


def stated_model(path: Path) -> str | None:
    """The model a calibration file says it was made for; None when there is no such file
    or it states none (whether it is usable otherwise, `load` says)."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    model = raw.get("model_id") if isinstance(raw, dict) else None
    return model if isinstance(model, str) else None


def calibration_path(directory: Path, category: str, model_id: str | None = None) -> Path:
    """Where `matcher calibrate` writes the calibration of `model_id` for `category`:
    `<category>.<model id>.json`. Without a model, the name older versions wrote (and that
    `load_for_model` still reads for the model the file states)."""
    if model_id is None:
        return directory / f"{category}.json"
    return directory / f"{category}.{_SAFE_NAME.sub('_', model_id)}.json"


def load_for_model(directory: Path, model_id: str) -> dict[str, Calibration]:
    """The calibrations in `directory` made for `model_id`, by category. Any file name is
    read (the model is the one the file states); where two files hold one category, the one
    named for the model (`calibration_path`) wins over an older-style one."""
    found: dict[str, Calibration] = {}
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            calibration = load(path)
        except CalibrationError as error:
            log.warning("ignoring calibration: %s", error)
            continue
        if calibration.model_id != model_id:  # normal after a reindex: each model has its own
            log.info("not using calibration %s: made for model %s, running %s", path,
                        calibration.model_id, model_id)
            continue
        named = path == calibration_path(directory, calibration.category, model_id)
        if calibration.category not in found or named:
            found[calibration.category] = calibration
    return found


def load_serving(directory: Path, shipped: Path, model_id: str) -> dict[str, Calibration]:
    """The calibrations the service uses for `model_id`, by category: the data dir's own
    (`matcher calibrate`), else those shipped in the package for that model (`shipped`), so
    that a fresh install of the default model is calibrated from its first start."""
    return {**load_for_model(shipped, model_id), **load_for_model(directory, model_id)}


ANY = "any"  # the category of a calibration measured on every kind of case


def for_category(calibrations: Mapping[str, Calibration], category: str) -> Calibration | None:
    """The category's own calibration, else the one made for any category, else None."""
    return calibrations.get(category) or calibrations.get(ANY)
