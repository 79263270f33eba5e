"""A live reindex serves the new model with the new model's calibrations, and a candidate's
expected false matches is only stated on the scale of the model that measured its distance."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from matcher.api import create_app
from matcher.calibration import Calibration, fit
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import new_key
from matcher.store import Role
from tests.api.builders import case_body, photo_file
from tests.api.conftest import auth, matcher_of
from tests.data import lfw_photos, require_test_data

FLIP = "dlib-resnet-v1-flip"
TARGET = 0.05
CASE_PHOTOS = (0, 4, 6)  # three people; LFW photos 1 and 2 are of the first one again
CASES = len(CASE_PHOTOS)


def _calibrate(directory: Path, model: str, centre: float, spread: float) -> Calibration:
    """A child calibration of `model` (made-up pairs on a scale of its own), in a file of any
    name: the service reads the model from the file."""
    distances = np.random.default_rng(3).normal(centre, spread, 50_000)
    calibration = fit(model, "child", distances, searches=500, gallery_faces=100)
    calibration.save(directory / f"child-{model}.json")
    return calibration


def _candidates(client: TestClient, key: str, sighting: int) -> list[dict[str, Any]]:
    found = client.get(f"/v1/sightings/{sighting}/candidates", headers=auth(key))
    assert found.status_code == 200, found.text
    rows: list[dict[str, Any]] = found.json()
    assert len(rows) == CASES
    return rows


def _sighting(client: TestClient, key: str, photo: int) -> int:
    sent = client.post("/v1/sightings", files=photo_file(lfw_photos()[photo]), headers=auth(key))
    assert sent.status_code == 201, sent.text
    return int(sent.json()["id"])


def _stated_by(rows: list[dict[str, Any]], calibration: Calibration) -> None:
    """Every candidate carries the threshold and expected false count of `calibration`."""
    for row in rows:
        assert row["model_id"] == calibration.model_id
        assert row["threshold"] == calibration.threshold_for(TARGET, CASES)
        assert row["expected_false_per_search"] == float(
            calibration.expected_false(row["distance"], CASES))
    # The same person and two strangers: a small count and large ones, not all alike.
    assert len({row["expected_false_per_search"] for row in rows}) > 1


def test_a_live_reindex_swaps_the_calibrations_with_the_model(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    require_test_data()
    app_settings = settings.model_copy(update={
        "data_dir": tmp_path / "data", "match_false_per_search": TARGET})
    # Two scales far enough apart that the thresholds they give differ.
    old = _calibrate(app_settings.calibration_dir, pipeline.model_id, 0.8, 0.1)
    new = _calibrate(app_settings.calibration_dir, FLIP, 0.6, 0.05)
    assert old.threshold_for(TARGET, CASES) != new.threshold_for(TARGET, CASES)

    with TestClient(create_app(app_settings, pipeline)) as client:
        matcher = matcher_of(client)
        keys = {role: new_key(matcher.sessions, role, role.value)[1] for role in Role}
        manager, tips = auth(keys[Role.CASE_MANAGER]), keys[Role.TIP_APP]
        investigator = keys[Role.INVESTIGATOR]
        for i in CASE_PHOTOS:
            case = client.post("/v1/cases", json=case_body(f"C{i}"), headers=manager).json()
            added = client.post(f"/v1/cases/{case['id']}/photos",
                                files=photo_file(lfw_photos()[i]), headers=manager)
            assert added.status_code == 201, added.text
        before = _sighting(client, tips, 1)
        _stated_by(_candidates(client, investigator, before), old)

        admin = auth(keys[Role.ADMIN])
        started = client.post("/v1/admin/reindex", json={"embed_flip": True}, headers=admin)
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 300
        while (state := client.get("/v1/admin/reindex", headers=admin).json())["running"]:
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        assert state["error"] is None and state["report"]["swapped"], state
        assert {c: cal.model_id for c, cal in matcher.calibrations.items()} == {"child": FLIP}

        # Found by the new model: its threshold and expected false count, at once.
        after = _sighting(client, tips, 2)
        _stated_by(_candidates(client, investigator, after), new)
        # Found by the old one: its distances are not on the new model's scale.
        kept = _candidates(client, investigator, before)
        assert {row["model_id"] for row in kept} == {pipeline.model_id}
        assert [row["expected_false_per_search"] for row in kept] == [None] * CASES

    # A restart serves the new model (serving.json) with its calibration, and still states
    # nothing for the old model's candidates.
    with TestClient(create_app(app_settings, pipeline)) as client:
        assert matcher_of(client).model_id == FLIP
        _stated_by(_candidates(client, investigator, after), new)
        kept = _candidates(client, investigator, before)
        assert [row["expected_false_per_search"] for row in kept] == [None] * CASES
        assert [row["threshold"] for row in kept] == [old.threshold_for(TARGET, CASES)] * CASES
