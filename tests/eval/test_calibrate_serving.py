"""`matcher calibrate --data-dir D` calibrates the model D serves (its store's record, after a
reindex, wins over the environment as at `matcher serve`), writes a file named for that model,
and never replaces the calibration of another model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from matcher.calibration import calibration_path, fit, load, load_for_model
from matcher.config import Settings
from matcher.eval.manifest import read_manifest
from tests.data import REPO_ROOT, require_test_data
from tests.seed import record_model

ENVIRONMENT_MODEL = "dlib-resnet-v1"  # tests/conftest.py: MATCHER_EMBEDDER=dlib, no flip
SERVED = "dlib-resnet-v1-flip"


def test_calibrate_measures_the_served_model_and_keeps_the_others(
    settings: Settings, tmp_path: Path
) -> None:
    data = require_test_data()
    fgnet = read_manifest(data / "fgnet-dev" / "manifest.csv", require_age=True)
    chosen = sorted({p.identity for p in fgnet})[:8]
    lfw: dict[str, Path] = {}
    for photo in sorted(read_manifest(data / "lfw-dev" / "manifest.csv"),
                        key=lambda p: str(p.path)):
        lfw.setdefault(photo.identity, photo.path)
    fg_manifest, lfw_manifest = tmp_path / "fgnet.csv", tmp_path / "lfw.csv"
    fg_manifest.write_text("path,identity,age\n" + "".join(
        f"{p.path},{p.identity},{p.age}\n" for p in fgnet if p.identity in chosen))
    lfw_manifest.write_text("path,identity\n" + "".join(
        f"{path},{who}\n" for who, path in sorted(lfw.items())[:80]))

    # The data dir serves the flip model since a reindex; the environment says plain dlib.
    data_dir = tmp_path / "data"
    record_model(settings.model_copy(update={"data_dir": data_dir, "embedder": "dlib",
                                               "embed_flip": True}))
    directory = data_dir / "calibration"
    rng = np.random.default_rng(0)
    theirs = fit(ENVIRONMENT_MODEL, "any", rng.uniform(0.3, 1.3, 5_000), 1, 1)
    theirs.save(calibration_path(directory, "any"))  # a file named as older versions did
    theirs_bytes = calibration_path(directory, "any").read_bytes()

    def calibrate(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "matcher", "calibrate", "--cross-age", str(fg_manifest),
             "--distractors", str(lfw_manifest), "--category", "any", "--data-dir",
             str(data_dir), *extra],
            cwd=REPO_ROOT, env={**os.environ, "MATCHER_EMBEDDER": "dlib"}, capture_output=True,
            text=True, timeout=600, check=False)

    # Asked to write over another model's file: refused before measuring anything.
    refused = calibrate("--out", str(calibration_path(directory, "any")))
    assert refused.returncode == 2 and ENVIRONMENT_MODEL in refused.stderr, refused.stderr
    assert calibration_path(directory, "any").read_bytes() == theirs_bytes

    result = calibrate()
    assert result.returncode == 0, result.stderr
    path = calibration_path(directory, "any", SERVED)
    assert result.stdout.strip().endswith(str(path))
    written = load(path)
    assert written.model_id == SERVED and written.pairs >= 1000
    # The other model's calibration is untouched, and each model loads its own.
    assert calibration_path(directory, "any").read_bytes() == theirs_bytes
    assert load_for_model(directory, SERVED) == {"any": written}
    assert load_for_model(directory, ENVIRONMENT_MODEL) == {"any": theirs}
