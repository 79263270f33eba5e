"""`matcher fit-projection --from-store` on a store built through the use cases from real
photos: LAG people registered as cases with their young photos, their adult photos uploaded
as sightings and confirmed as `match` by the review. The fit is refused on too few people and
when it is not better than the serving model; a better one is written with the cases it was
fitted on, no fold fits on a person it scores, and erasing a fitted case is logged and counted
in /metrics."""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from matcher.api import create_app
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.embed.projection import (
    PldaRecipe,
    Projection,
    Recipe,
    identity_hash,
    load_projection,
)
from matcher.service import (
    CasePhotoUpload,
    Runtime,
    ingest_sighting,
    new_key,
    open_runtime,
    register_case,
    sighting_candidates,
    store_fit,
)
from matcher.service.reindex import ReindexJob
from matcher.service.review import decide_candidate
from matcher.service.store_fit import (
    Score,
    StoreFit,
    StoreFitRefused,
    case_identity,
    fit_from_store,
    projections_dir,
    save_store_fit,
    score_searches,
    store_salt,
)
from matcher.store import SYSTEM, NewCase, NewSighting, Role, Verdict
from matcher.store.fitting import case_ids
from tests.data import REPO_ROOT, require_test_data

PEOPLE = 40  # in the store at first
ADDED = 2  # registered after the serving model changed: the store has no base vector of them


@dataclass(frozen=True)
class Person:
    name: str
    young: tuple[Path, ...]  # case photos
    adult: tuple[Path, ...]  # sightings, confirmed


def lag_people(count: int, skip: int = 0) -> list[Person]:
    root = require_test_data() / "lag-dev"
    photos: dict[str, dict[str, list[Path]]] = {}
    with (root / "manifest.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            groups = photos.setdefault(row["identity"], {"young": [], "adult": []})
            groups[row["age_group"]].append(root / row["path"])
    return [Person(name, tuple(photos[name]["young"]), tuple(photos[name]["adult"]))
            for name in sorted(photos)[skip : skip + count]]


def add_people(matcher: Runtime, people: list[Person]) -> int:
    """Registers each person as a case, uploads their adult photos as sightings and confirms
    each as the case; returns how many photos went in."""
    for person in people:
        case, _ = register_case(matcher, NewCase(
            category="child", name=person.name, missing_since=dt.date(2015, 1, 1),
            age_when_missing=9), [CasePhotoUpload(p.read_bytes()) for p in person.young])
        for photo in person.adult:
            sighting = ingest_sighting(matcher, photo.read_bytes(), NewSighting(app="test"))
            candidate = next(row for row in sighting_candidates(matcher, sighting.sighting_id)
                             if row.case_id == case.id)
            decide_candidate(matcher, SYSTEM, candidate.id, Verdict.MATCH)
    return sum(len(p.young) + len(p.adult) for p in people)


def copy_store(settings: Settings, to: Path) -> Settings:
    shutil.copytree(settings.data_dir, to / "data")
    return settings.model_copy(update={"data_dir": to / "data"})


@pytest.mark.parametrize("chunk", [1, 256])
def test_scores_count_rank_one_and_matches_under_the_non_mated_quantile(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 1 has two faces (a case's distance is its best face's); four sightings, the last
    one closer to case 2 than to its own. Mated distances 1, 7, 1, 4; the 8 non-mated ones
    (sighting, other case) sorted: 1, 6, 10.3, 12, 22.8, 24.4, 25.6, 33.6."""
    monkeypatch.setattr(store_fit, "PROBE_CHUNK", chunk)  # the running partition, too
    gallery = np.array([[0, 0], [10, 0], [0, 5], [20, 20]], np.float32)
    probes = np.array([[9, 0], [0, -7], [0, 6], [0, 4]], np.float32)
    args = (gallery, np.array([1, 1, 2, 3]), probes, np.array([1, 1, 2, 1]))
    # At most floor(rate x 8) non-mated pairs fall under the threshold, and a match must be
    # strictly closer than it.
    assert score_searches(*args, false_match_rate=0.01) == Score(4, 3, 0)  # under 1
    assert score_searches(*args, false_match_rate=0.125) == Score(4, 3, 3)  # under 6
    assert score_searches(*args, false_match_rate=0.25) == Score(4, 3, 4)  # under 10.3


@pytest.fixture(scope="module")
def template(settings: Settings, pipeline: FacePipeline,
             tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The store of PEOPLE people under the plain model (SQLite; tests copy it). Each sighting
    is proposed for every case (top-k), so each can be confirmed as its own."""
    require_test_data()
    store = settings.model_copy(update={
        "data_dir": tmp_path_factory.mktemp("store-fit") / "data", "match_top_k": 100})
    shutil.copytree(settings.cache_dir, store.cache_dir)  # the weights: no second download
    matcher = open_runtime(store, pipeline)
    try:
        add_people(matcher, lag_people(PEOPLE))
    finally:
        matcher.close()
    return store


def test_too_few_people_are_refused_with_the_counts(
    template: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    matcher = open_runtime(copy_store(template, tmp_path), pipeline)
    try:
        with pytest.raises(StoreFitRefused) as refused:
            fit_from_store(matcher, PldaRecipe(), min_people=PEOPLE + 1)
        assert f"knows {PEOPLE} people with two faces or more" in str(refused.value)
        assert f"needs at least {PEOPLE + 1}" in str(refused.value)
        # Refused before anything else: no photo embedded, no salt made.
        assert store_salt(matcher.settings.data_dir) is None
    finally:
        matcher.close()


def test_a_fit_that_is_not_better_is_refused_and_not_written(
    template: Settings, tmp_path: Path
) -> None:
    """The plain model serves; PLDA fitted on 30-odd people per fold learns too little
    (docs/accuracy-2026-11.md: it needs many people) and accepts fewer confirmed matches."""
    store = copy_store(template, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "matcher", "fit-projection", "--from-store", "--data-dir",
         str(store.data_dir), "--min-people", str(PEOPLE), "--method", "plda"],
        cwd=REPO_ROOT, env={**os.environ, "MATCHER_THREADS": "1"}, capture_output=True,
        text=True, timeout=300, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"store: {PEOPLE} people with two faces or more" in result.stdout
    assert "serving dlib-resnet-v1: rank-1 " in result.stdout
    assert "new fit (plda): rank-1 " in result.stdout
    assert "the new fit is not better than the serving model" in result.stderr
    assert "nothing written" in result.stderr
    assert not list(projections_dir(store.data_dir).glob("*.npz"))


@dataclass(frozen=True)
class Fitted:
    settings: Settings
    fit: StoreFit
    path: Path
    cases: list[int]
    added_photos: int


@pytest.fixture(scope="module")
def fitted(template: Settings, pipeline: FacePipeline,
           tmp_path_factory: pytest.TempPathFactory) -> Fitted:
    """The store moved to a poor serving model (a projection keeping 4 of the 128 dimensions:
    a stand-in for a fit that does badly on this store's people), then ADDED more people, then
    fitted (PLDA) from the store and written."""
    settings = copy_store(template, tmp_path_factory.mktemp("store-fit-better"))
    poor = settings.data_dir / "four-dimensions.npz"
    matrix = np.zeros((128, 128), np.float32)
    matrix[:4, :4] = np.eye(4)
    Projection(matrix, pipeline.model_id, 0.6, (), Recipe()).save(poor)
    matcher = open_runtime(settings, pipeline)
    try:
        assert ReindexJob(matcher, settings.model_copy(
            update={"projection_file": poor})).run().swapped
        added = add_people(matcher, lag_people(ADDED, skip=PEOPLE))
        fit = fit_from_store(matcher, PldaRecipe(), min_people=PEOPLE)
        path = projections_dir(settings.data_dir) / "fit.npz"
        save_store_fit(fit, path)
        with matcher.sessions() as session:
            cases = case_ids(session)
    finally:
        matcher.close()
    return Fitted(matcher.settings, fit, path, cases, added)


def test_a_better_fit_is_written_with_the_cases_it_was_fitted_on(
    fitted: Fitted, pipeline: FacePipeline
) -> None:
    fit = fitted.fit
    assert fit.refusal is None and fit.people == PEOPLE + ADDED
    serving, new = fit.serving, fit.fitted
    assert new.searches == serving.searches == fit.confirmed > PEOPLE
    assert new.accepted > serving.accepted and new.rank1 >= serving.rank1
    # The people added under the poor model have no stored base vector: embedded from their
    # stored photos and detections.
    assert fit.embedded == fitted.added_photos
    loaded = load_projection(fitted.path, pipeline.model_id)
    assert loaded.model_id == fit.projection.model_id if fit.projection else False
    assert "+plda-" in loaded.model_id
    # Store cases apart from research people, hashed with this store's own salt.
    salt = store_salt(fitted.settings.data_dir)
    assert salt is not None and loaded.people == ()
    assert set(loaded.store_cases) == {identity_hash(case_identity(salt, case))
                                       for case in fitted.cases}
    assert identity_hash(f"case:{fitted.cases[0]}") not in loaded.store_cases


def test_no_fold_fits_on_a_person_it_scores(fitted: Fitted) -> None:
    salt = store_salt(fitted.settings.data_dir)
    assert salt is not None
    scored: list[int] = []
    for fold in fitted.fit.folds:
        searched = {identity_hash(case_identity(salt, case)) for case in fold.scored_cases}
        assert fold.fitted and searched, fold.fold
        assert not searched & set(fold.fitted), f"fold {fold.fold} fitted on people it scored"
        scored += fold.scored_cases
    # Every person is scored, in one fold only.
    assert sorted(scored) == fitted.cases


def test_erasing_a_fitted_case_is_logged_and_counted_in_metrics(
    fitted: Fitted, pipeline: FacePipeline, caplog: pytest.LogCaptureFixture
) -> None:
    settings = fitted.settings
    matcher = open_runtime(settings, pipeline)
    try:
        assert ReindexJob(matcher, settings.model_copy(
            update={"projection_file": fitted.path})).run().swapped
    finally:
        matcher.close()
    with TestClient(create_app(settings, pipeline)) as client:
        served: Runtime = client.app.state.matcher  # type: ignore[attr-defined]
        assert fitted.fit.projection is not None
        assert served.model_id == fitted.fit.projection.model_id
        admin, manager = ({"Authorization": f"Bearer {new_key(served.sessions, role, 'k')[1]}"}
                          for role in (Role.ADMIN, Role.CASE_MANAGER))

        def erased() -> float:
            response = client.get("/metrics", headers=admin)
            assert response.status_code == 200, response.text
            return next(sample.value for family in text_string_to_metric_families(response.text)
                        for sample in family.samples
                        if sample.name == "matcher_projection_erased_cases")

        assert erased() == 0
        case = fitted.cases[0]
        with caplog.at_level(logging.WARNING, logger="matcher.service.store_fit"):
            assert client.delete(f"/v1/cases/{case}", headers=manager).status_code == 204
        warned = [r.getMessage() for r in caplog.records if r.name == "matcher.service.store_fit"]
        assert any(f"case {case} was erased" in m and "refit" in m for m in warned), warned
        assert erased() == 1
        # A refit now: the serving fit was fitted on every person left, whose figures would
        # flatter it, so there is nothing to compare on.
        again = fit_from_store(served, PldaRecipe(), min_people=2)
        assert again.left_out == PEOPLE + ADDED - 1 and again.fitted.searches == 0
        assert again.refusal is not None and "no confirmed match" in again.refusal

