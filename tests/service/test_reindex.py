"""`matcher reindex`: killed half-way it resumes to the same vectors a clean run gives; the
Ray path gives the same vectors as the local one."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from matcher.api import create_app
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import (
    CaseMatching,
    CasePhotoUpload,
    ModelNotEmbedded,
    browse_cases,
    case_matching,
    ingest_sighting,
    open_runtime,
    register_case,
    reindex,
)
from matcher.service.embedding import LocalEmbedding, embed_photos
from matcher.service.reindex import ReindexError, ReindexJob
from matcher.service.retention import purge_sightings
from matcher.service.serving import recorded_model
from matcher.store import (
    Face,
    FaceVector,
    NewCase,
    NewSighting,
    read_photo,
    session_factory,
    session_scope,
)
from matcher.store.vectors import FaceToEmbed, faces_without_vectors
from matcher.wiring import load_pipeline, make_engine
from tests.data import REPO_ROOT, fgnet_photos, lfw_photos, require_test_data

FLIP = "dlib-resnet-v1-flip"


def _store(settings: Settings, pipeline: FacePipeline, photos: int) -> Settings:
    """Cases from the first FG-NET photos, and a sighting of each of the next ones."""
    require_test_data()
    matcher = open_runtime(settings, pipeline)
    chosen = fgnet_photos()[:photos]
    for i, photo in enumerate(chosen[: photos // 2]):
        register_case(matcher, NewCase(category="child", name=f"c{i}", age_when_missing=9,
                                       missing_since=dt.date(2020, 1, 1)),
                      [CasePhotoUpload(photo.path.read_bytes())])
    for photo in chosen[photos // 2 :]:
        ingest_sighting(matcher, photo.path.read_bytes(), NewSighting(app="tips"))
    matcher.close()
    return settings


def _flip_vectors(settings: Settings) -> dict[int, bytes]:
    engine = make_engine(settings)
    try:
        with session_factory(engine)() as session:
            rows = session.scalars(select(FaceVector).where(FaceVector.model_id == FLIP)).all()
            return {row.face_id: row.descriptor for row in rows}
    finally:
        engine.dispose()


def _reindex_cli(data_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "MATCHER_DATA_DIR": str(data_dir), "MATCHER_DETECT_BATCH_SIZE": "2",
           "MATCHER_WORKERS": "1"}
    return subprocess.Popen([sys.executable, "-m", "matcher", "reindex", "--flip"],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_killed_reindex_resumes_to_the_vectors_of_a_clean_run(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    store = _store(settings.model_copy(update={"data_dir": tmp_path}), pipeline, photos=30)
    job = _reindex_cli(tmp_path)
    matcher = open_runtime(store, pipeline)  # to watch the store while the job writes
    try:
        deadline = time.monotonic() + 120
        while True:
            with matcher.sessions() as session:
                written = session.scalar(select(func.count()).select_from(FaceVector)
                                         .where(FaceVector.model_id == FLIP)) or 0
            if written or job.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        job.send_signal(signal.SIGKILL)
        job.wait()
        with matcher.sessions() as session:
            left = len(faces_without_vectors(session, FLIP, limit=10_000))
    finally:
        matcher.close()
    assert written > 0 and left > 0, "the kill did not land half-way"

    resumed = _reindex_cli(tmp_path)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    report = json.loads(out)
    assert report["swapped"] and report["faces_to_embed"] == left
    assert report["faces_not_found"] == 0 and report["to_model"] == FLIP
    assert (recorded_model(store) or {})["embed_flip"] is True

    # The same vectors as embedding every stored photo afresh with the flip model.
    flip = load_pipeline(store.model_copy(update={"embed_flip": True}))
    after = open_runtime(store)  # the store's record: opens with the flip model
    try:
        assert after.model_id == FLIP and len(after.index) == 15
        with after.sessions() as session:
            faces = faces_without_vectors(session, "no such model", limit=10_000)
    finally:
        after.close()
    stored = _flip_vectors(store)
    assert sorted(stored) == [face.face_id for face in faces]
    _assert_clean_vectors(flip, tmp_path, faces, stored)


def _assert_clean_vectors(pipeline: FacePipeline, data_dir: Path, faces: list[FaceToEmbed],
                          stored: dict[int, bytes]) -> None:
    """The stored vectors are those of embedding each stored photo afresh (its faces together,
    as the job does: torch's results move in the last digits with the batch's make-up)."""
    by_photo: dict[str, list[FaceToEmbed]] = {}
    for face in faces:
        by_photo.setdefault(face.path, []).append(face)
    for path, mine in by_photo.items():
        [clean] = embed_photos(pipeline, [read_photo(data_dir, path)], [mine])
        for face, vector in zip(mine, clean, strict=True):
            assert vector is not None
            assert np.allclose(np.frombuffer(stored[face.face_id], "<f4"), vector, atol=1e-5)


def test_the_ray_path_gives_the_vectors_of_the_local_path(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    import ray

    from matcher.service.ray_embedding import RayEmbedding

    local_dir, ray_dir = tmp_path / "local", tmp_path / "ray"
    results = {}
    for folder in (local_dir, ray_dir):
        store = _store(settings.model_copy(update={"data_dir": folder}), pipeline, photos=6)
        target = store.model_copy(update={"embed_flip": True})
        matcher = open_runtime(store, pipeline)
        try:
            embedding = (RayEmbedding.connect(target, "local", num_cpus=2) if folder == ray_dir
                         else LocalEmbedding(load_pipeline(target)))
            report = ReindexJob(matcher, target, embedding=embedding).run()
            assert report.swapped and report.faces_embedded == 6
        finally:
            matcher.close()
        results[folder] = _flip_vectors(store)
    ray.shutdown()
    assert results[local_dir].keys() == results[ray_dir].keys()
    for face_id, descriptor in results[local_dir].items():
        assert np.allclose(np.frombuffer(descriptor, "<f4"),
                           np.frombuffer(results[ray_dir][face_id], "<f4"), atol=1e-5)


def test_stored_detections_are_embedded_without_detecting_again(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A target whose detector finds nothing (threshold 1.0) still embeds every stored face
    from its stored detection; faces stored without one (before revision 0004) are detected
    again, so under that target none is found: a case left without any face is reported (and
    says so to its readers), and a target that embeds no face at all is not swapped in."""
    reports, cases = {}, {}
    matching: dict[str, dict[int, CaseMatching]] = {}
    unfindable: dict[str, list[int]] = {}
    for forgotten in ("none", "one case's", "every"):
        store = _store(settings.model_copy(update={"data_dir": tmp_path / forgotten}), pipeline,
                       photos=6)
        matcher = open_runtime(store, pipeline)
        try:
            with session_scope(matcher.sessions) as session:
                stored = session.scalars(select(Face)).all()
                assert {f.detector for f in stored} == {pipeline.detector.name}
                assert all(np.asarray(f.keypoints).shape == (5, 2) for f in stored)
                lost = {"none": [], "one case's": [min(f.id for f in stored
                                                       if f.case_photo_id is not None)],
                        "every": [f.id for f in stored]}[forgotten]
                cases[forgotten] = sorted(f.case_photo.case_id for f in stored if f.id in lost
                                          and f.case_photo is not None)
                session.execute(update(Face).where(Face.id.in_(lost))
                                .values(detector=None, keypoints=None))
            blind = store.model_copy(update={"embed_flip": True, "detect_threshold": 1.0})
            job = ReindexJob(matcher, blind, embedding=LocalEmbedding(load_pipeline(blind)))
            if forgotten == "every":
                with pytest.raises(ReindexError, match="embedded none of the 6 stored faces"):
                    job.run()
                assert matcher.model_id != FLIP  # still serving the old model
            else:
                reports[forgotten] = job.run()
                matching[forgotten] = case_matching(matcher, browse_cases(matcher))
                unfindable[forgotten] = [c.id for c in browse_cases(matcher, matchable=False)]
        finally:
            matcher.close()
    assert (reports["none"].faces_embedded, reports["none"].faces_not_found) == (6, 0)
    assert reports["none"].unmatchable_cases == ()
    assert (reports["one case's"].faces_embedded,
            reports["one case's"].faces_not_found) == (5, 1)
    assert reports["one case's"].swapped and len(cases["one case's"]) == 1
    assert list(reports["one case's"].unmatchable_cases) == cases["one case's"]
    # What a case manager reads of each case: only the lost one cannot be found, and why.
    assert unfindable == {"none": [], "one case's": cases["one case's"]}
    assert all(m.matchable and m.reason is None for m in matching["none"].values())
    for case_id, state in matching["one case's"].items():
        lost = case_id in cases["one case's"]
        assert (state.model_id, state.faces, state.matchable_faces, state.matchable) == (
            FLIP, 1, 0 if lost else 1, not lost)
    assert f"the serving model {FLIP} has no descriptor of any of the case's 1 faces" in str(
        matching["one case's"][cases["one case's"][0]].reason)
    with caplog.at_level("WARNING", "matcher.service.startup"):  # and at every start
        open_runtime(settings.model_copy(update={"data_dir": tmp_path / "one case's"})).close()
    lost_case = cases["one case's"]
    assert f"1 active cases have no face {FLIP} can match: {lost_case}" in caplog.text
    # And the vectors are those of the flip model on the stored faces.
    kept_store = settings.model_copy(update={"data_dir": tmp_path / "none"})
    engine = make_engine(kept_store)
    try:
        with session_factory(engine)() as session:
            faces = faces_without_vectors(session, "no such model", limit=100)
    finally:
        engine.dispose()
    _assert_clean_vectors(load_pipeline(kept_store.model_copy(update={"embed_flip": True})),
                          kept_store.data_dir, faces, _flip_vectors(kept_store))


def test_a_model_set_without_a_reindex_is_refused_at_start_and_a_reindex_embeds_it(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    """The model settings changed, no reindex run: the server would search an empty index, so
    it refuses to start and says what to do; `matcher reindex` with those settings embeds
    every stored face for them."""
    store = _store(settings.model_copy(update={"data_dir": tmp_path}), pipeline, photos=6)
    flipped = store.model_copy(update={"embed_flip": True})
    with pytest.raises(ModelNotEmbedded, match="run `matcher reindex`"), \
            TestClient(create_app(flipped, pipeline)):
        pass
    matcher = open_runtime(flipped)  # as `matcher reindex` opens it
    assert matcher.model_id == FLIP and len(matcher.index) == 0
    with matcher.sessions() as session:
        faces = int(session.scalar(select(func.count()).select_from(Face)) or 0)
    report = ReindexJob(matcher, matcher.settings).run()
    assert report.swapped and (report.from_model, report.to_model) == (FLIP, FLIP)
    assert report.faces_embedded == faces and len(matcher.index) > 0
    with pytest.raises(ReindexError, match="every stored face has its vector"):
        ReindexJob(matcher, matcher.settings).run()
    cases = len(matcher.index)
    matcher.close()
    with TestClient(create_app(flipped, pipeline)) as client:
        assert client.get("/healthz").json()["model_id"] == FLIP
        assert len(client.app.state.matcher.index) == cases  # type: ignore[attr-defined]


def test_sightings_purged_while_a_reindex_runs_leave_its_sighting_index_too(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retention purge (the housekeeping thread's) removes sightings from the live index
    only; the new model's index, built before, kept them and was swapped in with them."""
    require_test_data()
    store = settings.model_copy(update={"data_dir": tmp_path / "data"})
    matcher = open_runtime(store, pipeline)
    recent_photo, old_photo = (photo.path.read_bytes() for photo in lfw_photos()[:2])
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    kept = ingest_sighting(matcher, recent_photo, NewSighting(app="tips"))
    purged = ingest_sighting(matcher, old_photo, NewSighting(app="tips", uploaded_at=long_ago))
    build = reindex.build_serving

    def build_then_purge(*args: Any, **kwargs: Any) -> Any:
        new = build(*args, **kwargs)
        assert new.sighting_index.faces_of(purged.sighting_id).size == 1
        assert purge_sightings(matcher, 365).sightings == 1  # meanwhile
        return new

    monkeypatch.setattr(reindex, "build_serving", build_then_purge)
    try:
        assert ReindexJob(matcher, store.model_copy(update={"embed_flip": True})).run().swapped
        assert matcher.model_id == FLIP
        assert matcher.sighting_index.faces_of(purged.sighting_id).size == 0
        assert matcher.sighting_index.faces_of(kept.sighting_id).size == 1
    finally:
        matcher.close()
