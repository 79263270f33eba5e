"""What a reindex checks and records, as an operator met it (issue 19, defects 11 and 15): a
relative projection path, progress while uploads arrive, a refused name before anything is
opened, and an error that names the option a CLI user set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.embed.projection import Projection, Recipe
from matcher.service import ingest_sighting, open_runtime
from matcher.service.reindex import ReindexJob
from matcher.service.serving import recorded_model
from matcher.store import NewSighting
from tests.data import REPO_ROOT, lfw_photos
from tests.service.test_reindex import FLIP, _store


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "matcher", *args], cwd=REPO_ROOT,
                          env={**os.environ, "MATCHER_THREADS": "1"}, capture_output=True,
                          text=True, timeout=300)


def test_a_relative_projection_path_is_recorded_absolute(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record held the path as given: a start from another folder exited 3, "cannot read
    the projection file". Whatever caller built the target (model_copy skips validators)."""
    store = _store(settings.model_copy(update={"data_dir": tmp_path / "data"}), pipeline, 4)
    fits = tmp_path / "fits"
    Projection(np.eye(128, dtype=np.float32), pipeline.model_id, 0.6, (), Recipe()).save(
        fits / "fit.npz")
    monkeypatch.chdir(fits)
    matcher = open_runtime(store, pipeline)
    try:
        report = ReindexJob(matcher, store.model_copy(
            update={"projection_file": Path("fit.npz")})).run()
        assert report.swapped
    finally:
        matcher.close()
    recorded = (recorded_model(store) or {})["projection_file"]
    assert recorded == str((fits / "fit.npz").resolve())
    # Settings read from the environment take an absolute path too.
    assert Settings(projection_file=Path("fit.npz")).projection_file == (fits / "fit.npz"
                                                                        ).resolve()
    monkeypatch.chdir(tmp_path)
    again = open_runtime(store)
    try:
        assert again.model_id == report.to_model and len(again.index) > 0
    finally:
        again.close()


def test_progress_never_passes_its_total_when_faces_arrive_meanwhile(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    """Uploads during a live reindex are embedded by it too: progress ran to "113 of 103"."""
    store = _store(settings.model_copy(update={
        "data_dir": tmp_path, "detect_batch_size": 2, "workers": 1}), pipeline, photos=6)
    matcher = open_runtime(store, pipeline)
    seen: list[tuple[int, int]] = []
    photo = lfw_photos()[0].path.read_bytes()

    def progress(done: int, total: int) -> None:
        if not seen:  # an upload arrives while the job runs
            ingest_sighting(matcher, photo, NewSighting(app="tips"))
        seen.append((done, total))

    try:
        report = ReindexJob(matcher, store.model_copy(update={"embed_flip": True}),
                            progress=progress).run()
    finally:
        matcher.close()
    assert report.swapped and report.to_model == FLIP
    assert all(done <= total for done, total in seen), seen
    assert seen[-1][0] == seen[-1][1] == report.faces_to_embed + 1, seen


def test_an_unknown_embedder_is_refused_before_the_store_is_opened(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    """It loaded every model and used up the saved index copies of the last clean stop (each
    is deleted once read) before refusing the name."""
    store = _store(settings.model_copy(update={"data_dir": tmp_path}), pipeline, photos=4)
    saved = sorted(path.relative_to(store.index_dir)
                   for path in store.index_dir.rglob("*") if path.is_file())
    assert saved  # the clean stop's copies
    for args, told in ((["--embedder", "foo"], "'dlib', 'sface' or 'dlib+sface'"),
                       (["--embedder", "sface", "--detector", "mmod"],
                        "needs detector 'yunet'")):
        refused = _cli("reindex", "--data-dir", str(tmp_path), *args)
        assert refused.returncode == 2 and told in refused.stderr, refused.stderr
        assert sorted(path.relative_to(store.index_dir) for path in
                      store.index_dir.rglob("*") if path.is_file()) == saved


def test_a_projection_of_another_model_names_the_option_a_cli_user_set(
    tmp_path: Path
) -> None:
    other = tmp_path / "other.npz"
    Projection(np.eye(128, dtype=np.float32), "sface-v1", 0.6, (), Recipe()).save(other)
    refused = _cli("reindex", "--data-dir", str(tmp_path / "data"), "--projection", str(other))
    assert refused.returncode == 2, refused.stderr
    assert "fitted on vectors of 'sface-v1'" in refused.stderr
    assert "--projection" in refused.stderr
