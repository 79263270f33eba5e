"""The use cases without HTTP: the index follows the store, across restarts too."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pytest

from matcher.calibration import calibration_path, fit
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import (
    CasePhotoUpload,
    DuplicatePhoto,
    Runtime,
    create_case,
    ingest_sighting,
    open_runtime,
    register_case,
    sighting_candidates,
    update_case,
)
from matcher.store import (
    CaseStatus,
    NewCase,
    NewSighting,
    list_events,
    session_scope,
    set_case_status,
)
from tests.data import lfw_photos, require_test_data


def new_case(name: str) -> NewCase:
    return NewCase(category="elderly", name=name, missing_since=dt.date(2022, 3, 1),
                   age_when_missing=81)


def test_the_index_is_rebuilt_from_the_store_at_start_up(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    require_test_data()
    app_settings = settings.model_copy(update={"data_dir": tmp_path})
    photos = [p.path.read_bytes() for p in lfw_photos()[:3]]
    first = open_runtime(app_settings, pipeline)
    kept, _ = register_case(first, new_case("kept"), [CasePhotoUpload(photos[0])])
    closed, _ = register_case(first, new_case("closed"), [CasePhotoUpload(photos[1])])
    assert first.index.owner_count == 2
    update_case(first, closed.id, status=CaseStatus.CLOSED)
    assert first.index.owner_count == 1  # out before update_case returned
    with pytest.raises(DuplicatePhoto):
        register_case(first, new_case("twice"), [CasePhotoUpload(photos[2])] * 2)
    first.close()

    second = open_runtime(app_settings, pipeline)
    try:
        # kept + "twice" (its first photo went in): the closed case stays out.
        assert second.index.owner_count == 2
        assert second.index.faces_of(closed.id).size == 0
        result = ingest_sighting(second, photos[0], NewSighting(app="test"))
        rows = sighting_candidates(second, result.sighting_id)
        assert rows[0].case_id == kept.id and rows[0].rank == 1
        assert rows[0].distance < 0.1  # the very same photo
        assert all(row.case_id != closed.id for row in rows)
    finally:
        second.close()


def test_a_clean_restart_loads_the_saved_index_and_a_changed_store_rebuilds_it(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_test_data()
    app_settings = settings.model_copy(update={"data_dir": tmp_path})
    photos = [p.path.read_bytes() for p in lfw_photos()[:2]]
    first = open_runtime(app_settings, pipeline)
    kept, _ = register_case(first, new_case("kept"), [CasePhotoUpload(photos[0])])
    hidden, _ = register_case(first, new_case("hidden"), [CasePhotoUpload(photos[1])])
    first.close()  # saves the index

    with caplog.at_level(logging.INFO, logger="matcher.service.saved_index"):
        second = open_runtime(app_settings, pipeline)
    assert "loaded the saved active case index: 2 faces" in caplog.text
    assert second.index.owner_count == 2
    # Changed behind the service's back while it serves (another process): the clean stop
    # drops what the store no longer has before it saves (issue 19, defect 13).
    with session_scope(second.sessions) as session:
        set_case_status(session, hidden.id, CaseStatus.FOUND)
    second.close()

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="matcher.service.saved_index"):
        third = open_runtime(app_settings, pipeline)
    assert "loaded the saved active case index: 1 faces" in caplog.text
    assert third.index.owner_count == 1 and third.index.faces_of(hidden.id).size == 0
    third.close()
    # Changed while nothing served (a restore): the save is stale.
    with session_scope(third.sessions) as session:
        set_case_status(session, hidden.id, CaseStatus.ACTIVE)
    third.engine.dispose()

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="matcher.service.saved_index"):
        fourth = open_runtime(app_settings, pipeline)
    try:
        assert "saved active case index is stale" in caplog.text
        assert fourth.index.owner_count == 2 and fourth.index.faces_of(hidden.id).size == 1
        assert fourth.index.faces_of(kept.id).size == 1
    finally:
        fourth.close()


def test_a_case_closed_while_a_sighting_is_searched_gets_no_candidate(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    require_test_data()
    matcher = open_runtime(settings.model_copy(update={"data_dir": tmp_path}), pipeline)
    try:
        photos = [p.path.read_bytes() for p in lfw_photos()[:2]]
        closing, _ = register_case(matcher, new_case("closing"), [CasePhotoUpload(photos[0])])
        other, _ = register_case(matcher, new_case("other"), [CasePhotoUpload(photos[1])])
        # The race window: the store says closed, the index still holds the case's faces
        # (update_case would remove them a moment later).
        with session_scope(matcher.sessions) as session:
            set_case_status(session, closing.id, CaseStatus.CLOSED)
        assert matcher.index.faces_of(closing.id).size == 1
        result = ingest_sighting(matcher, photos[0], NewSighting(app="test"))
        rows = sighting_candidates(matcher, result.sighting_id)
        assert [(row.case_id, row.rank) for row in rows] == [(other.id, 1)]
    finally:
        matcher.close()


def test_a_status_change_is_audited_with_the_status_before_it(matcher: Runtime) -> None:
    case = create_case(matcher, new_case("found"))
    update_case(matcher, case.id, status=CaseStatus.FOUND)
    with matcher.sessions() as session:
        event = list_events(session, object_type="case", object_id=case.id)[-1]
    assert event.action == "update"
    assert (event.detail["status"], event.detail["was"]) == ("found", "active")


def test_the_sighting_index_is_saved_and_one_left_behind_by_a_crash_is_not_trusted(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_test_data()
    app_settings = settings.model_copy(update={"data_dir": tmp_path})
    photos = [p.path.read_bytes() for p in lfw_photos()[4:6]]
    first = open_runtime(app_settings, pipeline)
    ingest_sighting(first, photos[0], NewSighting(app="test"))
    first.close()

    with caplog.at_level(logging.INFO, logger="matcher.service.saved_index"):
        second = open_runtime(app_settings, pipeline)
    assert "loaded the saved sighting index: 1 faces" in caplog.text
    assert second.sighting_index.owner_count == 1
    later = ingest_sighting(second, photos[1], NewSighting(app="test"))
    second.engine.dispose()  # killed: close() never ran, the saved index misses `later`

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="matcher.service.saved_index"):
        third = open_runtime(app_settings, pipeline)
    try:
        # The second start deleted the copy it loaded: there is none left to trust.
        assert "loaded the saved sighting index" not in caplog.text
        assert third.sighting_index.owner_count == 2
        # The rebuilt index is the one retro-matching searches: a case of the person in
        # `later` gets that sighting as its candidate.
        case, _ = register_case(third, new_case("later"), [CasePhotoUpload(photos[1])])
        rows = sighting_candidates(third, later.sighting_id)
        assert [row.case_id for row in rows] == [case.id]
    finally:
        third.close()


def test_a_missing_child_calibration_is_reported_at_start(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app_settings = settings.model_copy(update={"data_dir": tmp_path})
    with caplog.at_level(logging.WARNING, logger="matcher.service.startup"):
        open_runtime(app_settings, pipeline).close()
    assert "no child calibration for " + pipeline.model_id in caplog.text
    assert "the raw threshold 0.600" in caplog.text

    distances = np.random.default_rng(2).normal(0.8, 0.1, 5_000)
    fit(pipeline.model_id, "child", distances, searches=50, gallery_faces=100).save(
        calibration_path(app_settings.calibration_dir, "child"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="matcher.service.startup"):
        matcher = open_runtime(app_settings, pipeline)
    matcher.close()
    assert set(matcher.calibrations) == {"child"}
    assert "no child calibration" not in caplog.text


def test_the_data_dir_is_its_owners_alone(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    """Children's photos, reporters' contacts and keys: no other account may read them, new
    data dir or one an earlier version left world-readable."""
    for data_dir, before in ((tmp_path / "new", None), (tmp_path / "old", 0o755)):
        if before is not None:
            data_dir.mkdir(mode=before)
            data_dir.chmod(before)
        open_runtime(settings.model_copy(update={"data_dir": data_dir}), pipeline).close()
        assert data_dir.stat().st_mode & 0o777 == 0o700
        assert (data_dir / "matcher.db").is_file()
