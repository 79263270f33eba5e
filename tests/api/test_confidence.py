"""With a calibration for the running model, candidates say what their distance means, and a
false-candidate target sets the threshold at the gallery's current size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from matcher.calibration import calibration_path, fit
from matcher.embed import FacePipeline
from matcher.service import new_key
from matcher.store import Role
from tests.api.builders import case_body, photo_file
from tests.api.conftest import auth, matcher_of
from tests.data import lfw_photos, require_test_data

TARGET = 0.05


def test_candidates_carry_expected_false_matches_and_a_calibrated_threshold(
    make_client: Callable[..., TestClient], pipeline: FacePipeline, tmp_path: Path
) -> None:
    require_test_data()
    # Non-mated distances as a calibration run would measure them (a spread around 0.8).
    distances = np.random.default_rng(1).normal(0.8, 0.1, 50_000)
    calibration = fit(pipeline.model_id, "child", distances, searches=500, gallery_faces=100)
    calibration.save(calibration_path(tmp_path / "data" / "calibration", "child"))
    client = make_client(match_false_per_search=TARGET)
    matcher = matcher_of(client)
    assert set(matcher.calibrations) == {"child"}
    keys = {role: new_key(matcher.sessions, role, role.value)[1] for role in Role}
    manager = auth(keys[Role.CASE_MANAGER])
    # Three children's cases and one elderly person's: the child calibration counts the
    # children's faces only; the elderly case has no calibration (no "elderly", no "any").
    for i, photo in enumerate(lfw_photos()[:4]):
        body = case_body(f"C{i}", **({"category": "elderly", "age_when_missing": 80}
                                     if i == 3 else {}))
        case = client.post("/v1/cases", json=body, headers=manager).json()
        client.post(f"/v1/cases/{case['id']}/photos", files=photo_file(photo), headers=manager)
    sighting = client.post("/v1/sightings", files=photo_file(lfw_photos()[0]),
                           headers=auth(keys[Role.TIP_APP])).json()
    found = client.get(f"/v1/sightings/{sighting['id']}/candidates",
                       headers=auth(keys[Role.INVESTIGATOR])).json()
    assert len(found) == 4
    in_force = calibration.threshold_for(TARGET, gallery_faces=3)
    assert in_force != 0.6  # the raw setting is not what applies
    children = [c for c in found if c["case_name"] != "C3"]
    for candidate in children:
        assert candidate["threshold"] == in_force
        assert candidate["expected_false_per_search"] == float(
            calibration.expected_false(candidate["distance"], 3))
    assert children[0]["expected_false_per_search"] == 0.0  # the same photo: distance ~0
    [elderly] = [c for c in found if c["case_name"] == "C3"]
    assert (elderly["threshold"], elderly["expected_false_per_search"]) == (0.6, None)


def test_without_a_calibration_the_raw_threshold_applies(
    client: TestClient, keys: dict[Role, str]
) -> None:
    require_test_data()
    manager = auth(keys[Role.CASE_MANAGER])
    case = client.post("/v1/cases", json=case_body("C"), headers=manager).json()
    client.post(f"/v1/cases/{case['id']}/photos", files=photo_file(lfw_photos()[0]),
                headers=manager)
    sighting = client.post("/v1/sightings", files=photo_file(lfw_photos()[0]),
                           headers=auth(keys[Role.TIP_APP])).json()
    found = client.get(f"/v1/sightings/{sighting['id']}/candidates",
                       headers=auth(keys[Role.INVESTIGATOR])).json()
    assert [(c["threshold"], c["expected_false_per_search"]) for c in found] == [(0.6, None)]
