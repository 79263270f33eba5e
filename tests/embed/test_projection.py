"""The learned projection (issue 8) on real faces, by either recipe (softmax, PLDA): fitted
deterministically, part of the model id, refused for another model, applied by the pipeline,
refused by an evaluation of the people it was fitted on, fitted by the CLI, and moved to by a
reindex."""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.embed.image import load_image
from matcher.embed.projection import (
    METHODS,
    PldaRecipe,
    Projection,
    ProjectionError,
    Recipe,
    StackedRecipe,
    fit_projection,
    load_projection,
)
from matcher.eval.crossage import embed_largest_faces
from matcher.eval.fitting import FittedPeopleScored, check_not_fitted_on
from matcher.eval.manifest import LabelledPhoto, read_manifest
from matcher.eval.protocol import Protocol, build_protocol
from matcher.service import CasePhotoUpload, open_runtime, register_case
from matcher.service.reindex import ReindexJob
from matcher.service.serving import recorded_model
from matcher.store import FaceVector, NewCase
from matcher.wiring import load_pipeline
from tests.data import REPO_ROOT, fgnet_photos, lfw_photos, require_test_data

FGNET_PEOPLE = 6  # children photographed across years
LFW_PHOTOS = 40  # adults, several photos each


def fitting_set() -> list[LabelledPhoto]:
    people = sorted({p.identity for p in fgnet_photos()})[:FGNET_PEOPLE]
    children = [p for p in fgnet_photos() if p.identity in people]
    return [LabelledPhoto(p.path, p.identity, p.age)
            for p in [*children, *lfw_photos()[:LFW_PHOTOS]]]


@pytest.fixture(scope="module")
def labelled(pipeline: FacePipeline) -> tuple[np.ndarray, list[str]]:
    """The base model's vectors of the fitting set, with whose face each is."""
    require_test_data()
    photos = fitting_set()
    vectors = embed_largest_faces(pipeline, photos)
    found = [(v, p.identity) for v, p in zip(vectors, photos, strict=True) if v is not None]
    assert len(found) > 0.9 * len(photos)
    return np.stack([v for v, _ in found]), [who for _, who in found]


@pytest.fixture(scope="module")
def softmax(pipeline: FacePipeline, labelled: tuple[np.ndarray, list[str]]) -> Projection:
    vectors, people = labelled
    return fit_projection(vectors, people, pipeline.model_id,
                          pipeline.embedder.same_person_distance)


@pytest.fixture(scope="module", params=["proj", "plda", "proj+plda"])
def projection(request: pytest.FixtureRequest, pipeline: FacePipeline,
               labelled: tuple[np.ndarray, list[str]], softmax: Projection) -> Projection:
    """Each recipe's fit: what the service does with one does not depend on the recipe."""
    if request.param == "proj":
        return softmax
    vectors, people = labelled
    return fit_projection(vectors, people, pipeline.model_id,
                          pipeline.embedder.same_person_distance, METHODS[request.param]())


@pytest.fixture(scope="module")
def saved(projection: Projection, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("projection") / "projection.npz"
    projection.save(path)
    return path


def distances(vectors: np.ndarray) -> np.ndarray:
    return np.linalg.norm(vectors[:, None] - vectors[None, :], axis=-1)


def test_the_fit_is_deterministic_and_names_the_model(
    pipeline: FacePipeline, labelled: tuple[np.ndarray, list[str]], softmax: Projection
) -> None:
    vectors, people = labelled
    again = fit_projection(vectors, people, pipeline.model_id, 0.6)
    assert np.array_equal(again.matrix, softmax.matrix)
    assert softmax.model_id == f"{pipeline.model_id}+proj-{softmax.fingerprint}"
    # Any change to the post-processing is another vector space, so another model id.
    other = fit_projection(vectors, people, pipeline.model_id, 0.6, Recipe(steps=50))
    assert other.model_id != softmax.model_id
    assert not np.allclose(other.matrix, softmax.matrix)


def separation(vectors: np.ndarray, people: list[str]) -> float:
    """How much further apart different people's faces are than one person's, on average."""
    who = np.asarray(people)
    same = (who[:, None] == who[None, :]) & ~np.eye(len(who), dtype=bool)
    d = distances(vectors)
    return float(d[who[:, None] != who[None, :]].mean() - d[same].mean())


def test_the_fit_pulls_each_persons_faces_together(
    labelled: tuple[np.ndarray, list[str]], softmax: Projection
) -> None:
    vectors, people = labelled
    projected = softmax.apply(vectors)
    assert np.allclose(np.linalg.norm(projected, axis=1), 1.0, atol=1e-5)
    assert separation(projected, people) > separation(vectors, people)
    assert_threshold_carried_over(vectors, projected, people, softmax.same_person_distance)


def assert_threshold_carried_over(vectors: np.ndarray, projected: np.ndarray,
                                  people: list[str], same_person_distance: float) -> None:
    """The default threshold is carried over at the base model's false-match rate (0.6 here)."""
    who = np.asarray(people)
    different = who[:, None] != who[None, :]
    base_rate = (distances(vectors)[different] < 0.6).mean()
    projected_rate = (distances(projected)[different] < same_person_distance).mean()
    assert abs(projected_rate - base_rate) < 0.01


def accepted_at_one_percent(vectors: np.ndarray, people: list[str]) -> float:
    """Pairs of one person's faces closer than the distance that 1% of the pairs of different
    people fall below: a measure that does not depend on the scale of the distances."""
    who = np.asarray(people)
    upper = np.triu(np.ones((len(who), len(who)), dtype=bool), k=1)
    same = (who[:, None] == who[None, :]) & upper
    d = distances(vectors)
    threshold = np.quantile(d[(who[:, None] != who[None, :]) & upper], 0.01)
    return float((d[same] < threshold).mean())


def test_a_plda_fit_is_closed_form_named_saved_and_separates_people(
    pipeline: FacePipeline, labelled: tuple[np.ndarray, list[str]], tmp_path: Path
) -> None:
    vectors, people = labelled
    plda = fit_projection(vectors, people, pipeline.model_id, 0.6, PldaRecipe())
    assert plda.mean is not None and plda.method == "plda"
    again = fit_projection(vectors, people, pipeline.model_id, 0.6, PldaRecipe())
    assert np.array_equal(again.matrix, plda.matrix) and np.array_equal(again.mean, plda.mean)
    assert plda.model_id == f"{pipeline.model_id}+plda-{plda.fingerprint}"
    other = fit_projection(vectors, people, pipeline.model_id, 0.6, PldaRecipe(shrinkage=0.1))
    assert other.model_id != plda.model_id
    projected = plda.apply(vectors)
    # Not normalised: the lengths carry the model's distances.
    assert not np.allclose(np.linalg.norm(projected, axis=1), 1.0, atol=1e-2)
    assert accepted_at_one_percent(projected, people) > accepted_at_one_percent(vectors, people)
    assert_threshold_carried_over(vectors, projected, people, plda.same_person_distance)
    path = tmp_path / "plda.npz"
    plda.save(path)
    loaded = load_projection(path, pipeline.model_id)
    assert (loaded.model_id, loaded.recipe, loaded.people) == (plda.model_id, plda.recipe,
                                                               plda.people)
    assert np.array_equal(loaded.apply(vectors), projected)
    with pytest.raises(ValueError, match="two people with several photos"):
        fit_projection(vectors[:3], ["a", "a", "b"], pipeline.model_id, 0.6, PldaRecipe())


def test_a_stacked_fit_chains_both_recipes_and_saves_the_same_bytes_each_time(
    pipeline: FacePipeline, labelled: tuple[np.ndarray, list[str]], tmp_path: Path
) -> None:
    vectors, people = labelled
    stacked = fit_projection(vectors, people, pipeline.model_id, 0.6, StackedRecipe())
    assert stacked.method == "proj+plda" and stacked.first is not None
    assert stacked.model_id == f"{pipeline.model_id}+proj+plda-{stacked.fingerprint}"
    # The first stage is the softmax fit alone; the second, PLDA fitted on its outputs.
    softmax = fit_projection(vectors, people, pipeline.model_id, 0.6, Recipe())
    assert np.array_equal(stacked.first, softmax.matrix)
    plda = fit_projection(softmax.apply(vectors), people, pipeline.model_id, 0.6, PldaRecipe())
    assert np.allclose(stacked.apply(vectors), plda.apply(softmax.apply(vectors)), atol=1e-5)
    assert accepted_at_one_percent(stacked.apply(vectors), people) > accepted_at_one_percent(
        vectors, people)
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    stacked.save(first)
    fit_projection(vectors, people, pipeline.model_id, 0.6, StackedRecipe()).save(second)
    assert first.read_bytes() == second.read_bytes()  # no time stamp, no other drift
    loaded = load_projection(first, pipeline.model_id)
    assert (loaded.model_id, loaded.recipe) == (stacked.model_id, stacked.recipe)
    assert np.array_equal(loaded.apply(vectors), stacked.apply(vectors))


def test_sets_larger_than_a_batch_are_fitted_in_seeded_batches(
    pipeline: FacePipeline, labelled: tuple[np.ndarray, list[str]], softmax: Projection
) -> None:
    vectors, people = labelled

    def fit(recipe: Recipe) -> Projection:
        return fit_projection(vectors, people, pipeline.model_id, 0.6, recipe)

    # A batch that holds every photo is the whole-set fit, bit for bit.
    assert np.array_equal(fit(Recipe(batch_size=len(vectors))).matrix, softmax.matrix)
    batched = fit(Recipe(batch_size=len(vectors) // 4))
    assert np.array_equal(fit(Recipe(batch_size=len(vectors) // 4)).matrix, batched.matrix)
    assert not np.allclose(batched.matrix, softmax.matrix)
    assert separation(batched.apply(vectors), people) > separation(vectors, people)


def test_a_saved_projection_loads_only_for_its_model(
    projection: Projection, saved: Path, tmp_path: Path
) -> None:
    loaded = load_projection(saved, projection.base_model_id)
    assert np.array_equal(loaded.matrix, projection.matrix)
    assert (loaded.model_id, loaded.people) == (projection.model_id, projection.people)
    with pytest.raises(ProjectionError, match="fitted on vectors of .* but the configured"):
        load_projection(saved, "sface-2021dec")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a projection")
    for path in (garbage, tmp_path / "missing.npz"):
        with pytest.raises(ProjectionError, match="cannot read the projection file"):
            load_projection(path, projection.base_model_id)


def test_the_pipeline_serves_the_projected_model(
    settings: Settings, pipeline: FacePipeline, projection: Projection, saved: Path
) -> None:
    projected = load_pipeline(settings.model_copy(update={"projection_file": saved}))
    assert projected.model_id == projection.model_id != pipeline.model_id
    assert projected.embedder.same_person_distance == projection.same_person_distance
    photo = lfw_photos()[LFW_PHOTOS + 1].path.read_bytes()
    image = load_image(photo, max_bytes=settings.max_image_bytes,
                       max_pixels=settings.max_image_pixels)
    base_face, = pipeline.process([image])[0]
    face, = projected.process([image])[0]
    assert np.allclose(face.vector, projection.apply(base_face.vector[None])[0], atol=1e-5)
    assert not np.allclose(face.vector, base_face.vector, atol=1e-3)


def test_measuring_the_people_fitted_on_is_refused(
    settings: Settings, projection: Projection, saved: Path, tmp_path: Path
) -> None:
    projected = load_pipeline(settings.model_copy(update={"projection_file": saved}))
    data = require_test_data()
    cross_age = read_manifest(data / "fgnet-dev" / "manifest.csv", require_age=True)
    distractors = read_manifest(data / "lfw-dev" / "manifest.csv")
    with pytest.raises(FittedPeopleScored, match="were fitted on by the projection"):
        check_not_fitted_on(projected, build_protocol(cross_age, distractors))
    fitted = {p.identity for p in fitting_set()}
    others = [p for p in distractors if p.identity not in fitted]
    check_not_fitted_on(projected, Protocol(cases=[], distractors=others[:50], sightings=[],
                                            probes=others[50:100]))
    # Through the command line, evaluation and calibration alike: refused before any photo is
    # embedded, and no calibration is written.
    env = {**os.environ, "MATCHER_DATA_DIR": str(settings.data_dir),
           "MATCHER_PROJECTION_FILE": str(saved)}
    calibration = tmp_path / "calibration.json"
    for command in (["eval"], ["calibrate", "--out", str(calibration)]):
        result = subprocess.run(
            [sys.executable, "-m", "matcher", *command, "--cross-age",
             str(data / "fgnet-dev" / "manifest.csv"), "--distractors",
             str(data / "lfw-dev" / "manifest.csv")],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 2, result.stderr
        assert "fitted on by the projection" in result.stderr
        assert "embedding photos" not in result.stderr
    assert not calibration.exists()


def test_the_cli_fits_a_projection_the_pipeline_loads(settings: Settings, tmp_path: Path
                                                      ) -> None:
    require_test_data()
    manifest = tmp_path / "people.csv"
    with manifest.open("w", newline="") as handle:
        rows = csv.writer(handle)
        rows.writerow(["path", "identity"])
        rows.writerows([str(p.path), p.identity] for p in lfw_photos()[:24])
    env = {**os.environ, "MATCHER_DATA_DIR": str(settings.data_dir)}
    for method in ("plda", "proj"):  # PLDA is the default
        out = tmp_path / f"{method}.npz"
        chosen = [] if method == "plda" else ["--method", method]
        result = subprocess.run(
            [sys.executable, "-m", "matcher", "fit-projection", str(manifest), "--out", str(out),
             *chosen], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
            check=False)
        assert result.returncode == 0, result.stderr
        pipeline = load_pipeline(settings.model_copy(update={"projection_file": out}))
        assert pipeline.model_id in result.stdout and f"+{method}-" in pipeline.model_id
        assert len(pipeline.embedder.projection.people) == len({p.identity for p in
                                                                 lfw_photos()[:24]})
    # Photos of a single person cannot be fitted on: a clear error, no file.
    with manifest.open("w", newline="") as handle:
        rows = csv.writer(handle)
        rows.writerow(["path", "identity"])
        rows.writerows([str(p.path), "one person"] for p in lfw_photos()[:4])
    refused = subprocess.run([sys.executable, "-m", "matcher", "fit-projection", str(manifest),
                              "--out", str(tmp_path / "none.npz")], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=300, check=False)
    assert refused.returncode == 2 and "at least two people" in refused.stderr
    assert not (tmp_path / "none.npz").exists()


def test_a_reindex_moves_the_service_to_the_projected_model(
    settings: Settings, pipeline: FacePipeline, projection: Projection, saved: Path,
    tmp_path: Path
) -> None:
    store = settings.model_copy(update={"data_dir": tmp_path})
    matcher = open_runtime(store, pipeline)
    try:
        photo = lfw_photos()[LFW_PHOTOS + 2]
        register_case(matcher, NewCase(category="child", name="one", age_when_missing=9,
                                       missing_since=dt.date(2020, 1, 1)),
                      [CasePhotoUpload(photo.path.read_bytes())])
        target = store.model_copy(update={"projection_file": saved})
        report = ReindexJob(matcher, target).run()
        # The stored vector is projected: no photo is read again, no network runs.
        assert report.swapped and (report.faces_projected, report.faces_embedded) == (1, 0)
        assert matcher.model_id == projection.model_id
        with matcher.sessions() as session:
            stored = session.scalars(select(FaceVector).where(
                FaceVector.model_id == projection.model_id)).one().vector
    finally:
        matcher.close()
    # ... and it is the vector the projected pipeline gives the photo.
    image = load_image(photo.path.read_bytes(), max_bytes=settings.max_image_bytes,
                       max_pixels=settings.max_image_pixels)
    face, = load_pipeline(target).process([image])[0]
    assert np.allclose(stored, face.vector, atol=1e-5)
    recorded = recorded_model(store) or {}
    assert recorded["projection_file"] == str(saved)
    # A restart without MATCHER_PROJECTION_FILE serves the model the vectors were made for.
    again = open_runtime(store)
    try:
        assert again.model_id == projection.model_id and len(again.index) == 1
    finally:
        again.close()
