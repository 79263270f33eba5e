"""The fitted statistics shipped in the package: the default model's learned distance and its
calibrations (matcher/fitted, models/default-projection.md)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from matcher.calibration import load_serving
from matcher.config import Settings
from matcher.embed.projection import (
    ProjectedEmbedder,
    StackedRecipe,
    chosen_projection,
    load_projection,
)
from matcher.fitted import CALIBRATIONS, PROJECTION
from matcher.service import CasePhotoUpload, open_runtime, register_case
from matcher.service.reindex import ReindexJob
from matcher.service.serving import recorded_model
from matcher.store import Role
from matcher.wiring import load_pipeline
from tests.api.builders import case_body, photo_file
from tests.data import REPO_ROOT, fgnet_photos, require_test_data
from tests.live import LiveServer
from tests.store.builders import new_case

CARD = REPO_ROOT / "models" / "default-projection.md"
BASE = "dlib-resnet-v1-flip+sface-2021dec-flip-w0.50"
MODEL_ENV = ("MATCHER_EMBEDDER", "MATCHER_EMBED_FLIP", "MATCHER_ENSEMBLE_SFACE_WEIGHT",
             "MATCHER_DETECTOR", "MATCHER_PROJECTION_FILE")


def card_says(field: str) -> str:
    """A `field: value` line of the model card (value in backticks)."""
    found = re.search(rf"^- {field}: `([^`]+)`", CARD.read_text(), re.MULTILINE)
    assert found, f"the model card states no {field}"
    return found.group(1)


def default_settings(settings: Settings, **changes: object) -> Settings:
    """The test session's settings on the production default model (tests/conftest.py pins
    dlib for the service tests)."""
    return settings.model_copy(update={"embedder": "dlib+sface", "embed_flip": None,
                                       "projection_file": "shipped", **changes})


def test_the_shipped_file_is_the_one_the_card_describes() -> None:
    data = PROJECTION.read_bytes()
    assert len(data) <= 2 * 1024 * 1024
    assert hashlib.sha256(data).hexdigest() == card_says("sha256")
    projection = load_projection(PROJECTION)
    assert projection.model_id == card_says("model id")
    assert projection.base_model_id == BASE
    assert isinstance(projection.recipe, StackedRecipe)
    assert len(projection.people) == int(card_says("people fitted on"))
    assert not projection.store_cases


def test_the_default_model_is_the_shipped_fit_and_only_for_its_base_model(
        settings: Settings) -> None:
    assert Settings().projection_file == "shipped"
    pipeline = load_pipeline(default_settings(settings))
    assert isinstance(pipeline.embedder, ProjectedEmbedder)
    assert pipeline.model_id == card_says("model id")
    # dlib alone has no shipped fit: the setting leaves its vectors plain.
    assert chosen_projection("shipped", "dlib-resnet-v1") is None
    assert chosen_projection("none", BASE) is None


def test_calibrations_ship_for_the_default_model_and_its_plain_vectors(tmp_path: Path) -> None:
    for model_id in (card_says("model id"), BASE):
        calibrations = load_serving(tmp_path, CALIBRATIONS, model_id)
        assert set(calibrations) == {"child", "any"}, model_id
        child = calibrations["child"]
        assert child.source.get("protocol") == "children"  # children as distractors
        # Among children, strangers come closer than in a mixed gallery.
        assert child.threshold_for(0.001, 1) < calibrations["any"].threshold_for(0.001, 1)
    shipped = load_serving(tmp_path, CALIBRATIONS, card_says("model id"))
    assert all(c.source.get("cross_fit_folds") == 2 for c in shipped.values())


def test_a_fresh_server_serves_the_shipped_model_calibrated_without_a_warning(
        settings: Settings, tmp_path: Path) -> None:
    require_test_data()
    server = LiveServer(tmp_path / "data", cache_from=settings.cache_dir,
                        embedder="dlib+sface", tip_rate_per_minute="1000", tip_burst="100")
    for name in MODEL_ENV[1:]:
        server.env.pop(name, None)
    with server:
        server.start()
        manager = server.new_key(Role.CASE_MANAGER, "desk")
        tip = server.new_key(Role.TIP_APP, "app")
        investigator = server.new_key(Role.INVESTIGATOR, "inv")
        photos = sorted((p for p in fgnet_photos() if p.identity == "fgnet-001"),
                        key=lambda p: p.age or 0)
        with server.client(manager) as desk:
            case = desk.post("/v1/cases", json=case_body("A")).json()
            added = desk.post(f"/v1/cases/{case['id']}/photos", files=photo_file(photos[0]))
            assert added.status_code == 201, added.text
        with server.client(tip) as app:
            sighting = app.post("/v1/sightings", files=photo_file(photos[-1]))
            assert sighting.status_code == 201, sighting.text
        with server.client(investigator) as desk:
            found = desk.get(f"/v1/sightings/{sighting.json()['id']}/candidates").json()
        log = server.log_path.read_text()
    assert [c["case_id"] for c in found] == [case["id"]]
    [candidate] = found
    assert candidate["expected_false_per_search"] is not None
    # The threshold in force is the calibrated one, not the carried-over same-person distance.
    assert candidate["threshold"] != load_projection(PROJECTION).same_person_distance
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert records, log
    warnings = [r["msg"] for r in records if r["level"] in ("WARNING", "ERROR", "CRITICAL")]
    assert warnings == []
    assert any(card_says("model id") in r["msg"] for r in records)


def test_a_store_of_the_plain_model_keeps_serving_it_until_a_reindex(
        settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    require_test_data()
    photo = next(p for p in fgnet_photos() if p.identity == "fgnet-001")
    plain = default_settings(settings, data_dir=tmp_path, projection_file="none")
    before = open_runtime(plain)
    try:
        _, [added] = register_case(before, new_case("A"),
                                   [CasePhotoUpload(photo.path.read_bytes())])
        assert added.faces
    finally:
        before.close()
    with caplog.at_level(logging.WARNING):
        upgraded = open_runtime(default_settings(settings, data_dir=tmp_path))
    try:
        assert upgraded.model_id == BASE
        assert (recorded_model(upgraded.settings) or {})["projection_file"] == "none"
        assert "matcher reindex --projection shipped" in caplog.text
        target = upgraded.settings.model_copy(update={"projection_file": "shipped"})
        ReindexJob(upgraded, target).run()
        assert upgraded.model_id == card_says("model id")
    finally:
        upgraded.close()
    again = open_runtime(default_settings(settings, data_dir=tmp_path))
    try:
        assert again.model_id == card_says("model id")
    finally:
        again.close()


@pytest.mark.needs_data
def test_refitting_from_the_research_photos_gives_the_shipped_file_bit_for_bit(
        settings: Settings, tmp_path: Path) -> None:
    """The card's command, run again: about 5 minutes on 2 cores (every dev photo embedded)."""
    data = require_test_data()
    out = tmp_path / "projection.npz"
    env = {k: v for k, v in os.environ.items() if k not in MODEL_ENV}
    env["MATCHER_THREADS"] = "2"  # the card's: torch's sums depend on the thread count
    command = [sys.executable, "-m", "matcher", "fit-projection",
               *(str(data / name / "manifest.csv") for name in ("fgnet-dev", "lfw-dev",
                                                                "lag-dev")),
               "--method", "proj+plda", "--out", str(out), "--data-dir", str(settings.data_dir)]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=1800, check=False)
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == card_says("sha256")
    assert out.read_bytes() == PROJECTION.read_bytes()
