"""The use cases without HTTP: the index follows the store, across restarts too."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from matcher.config import Settings
from matcher.embed import FacePipeline, load_pipeline
from matcher.service import (
    CasePhotoUpload,
    DuplicatePhoto,
    ingest_sighting,
    open_matcher,
    register_case,
    sighting_candidates,
    update_case,
)
from matcher.store import CaseStatus, NewCase, NewSighting
from tests.data import lfw_photos, require_test_data


@pytest.fixture(scope="module")
def pipeline(settings: Settings) -> FacePipeline:
    return load_pipeline(settings)


def new_case(name: str) -> NewCase:
    return NewCase(category="elderly", name=name, missing_since=dt.date(2022, 3, 1),
                   age_when_missing=81)


def test_the_index_is_rebuilt_from_the_store_at_start_up(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    require_test_data()
    app_settings = settings.model_copy(update={"data_dir": tmp_path})
    photos = [p.path.read_bytes() for p in lfw_photos()[:3]]
    first = open_matcher(app_settings, pipeline)
    kept, _ = register_case(first, new_case("kept"), [CasePhotoUpload(photos[0])])
    closed, _ = register_case(first, new_case("closed"), [CasePhotoUpload(photos[1])])
    assert first.index.owner_count == 2
    update_case(first, closed.id, status=CaseStatus.CLOSED)
    assert first.index.owner_count == 1  # out before update_case returned
    with pytest.raises(DuplicatePhoto):
        register_case(first, new_case("twice"), [CasePhotoUpload(photos[2])] * 2)
    first.close()

    second = open_matcher(app_settings, pipeline)
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
