"""Review use cases without HTTP: the age gap, and retro-matching's edges."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from sqlalchemy import select

from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import (
    CasePhotoUpload,
    ingest_sighting,
    open_runtime,
    register_case,
    sighting_candidates,
    update_case,
)
from matcher.service.retro import retro_match
from matcher.service.review import age_gap_years
from matcher.store import CasePhoto, CaseStatus, Face, NewCase, NewSighting
from tests.api.builders import resaved
from tests.data import lfw_photos, require_test_data

SEEN = dt.date(2024, 6, 1)


def test_the_age_gap_uses_the_photo_date_else_the_age_on_it() -> None:
    missing = dt.date(2020, 6, 1)
    # The photo's own date wins over anything estimated.
    assert age_gap_years(SEEN, dt.date(2019, 6, 1), 3.0, dt.date(2010, 1, 1), 9.0,
                         missing) == 5.0
    # Date of birth + age on the photo: born 2010-06-01, 4 on the photo -> 2014-06-01.
    assert age_gap_years(SEEN, None, 4.0, dt.date(2010, 6, 1), None, missing) == 10.0
    # Only the age when missing: 9 on 2020-06-01, 7 on the photo -> 2018-06-01.
    assert age_gap_years(SEEN, None, 7.0, None, 9.0, missing) == 6.0
    # A sighting before the photo: negative.
    assert age_gap_years(dt.date(2018, 6, 1), dt.date(2020, 6, 1), None, None, 9.0,
                         missing) == -2.0
    assert age_gap_years(SEEN, None, None, dt.date(2010, 6, 1), 9.0, missing) is None
    # Dates out of any life (stored before the API refused them) give no gap, not an error
    # that fails every page of the queue holding the candidate.
    assert age_gap_years(SEEN, None, 5.0, dt.date(9999, 1, 1), None, missing) is None
    assert age_gap_years(SEEN, None, 0.0, None, 9.0, dt.date(1, 6, 1)) is None


def test_retro_matching_skips_closed_cases_and_an_empty_sighting_index(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    require_test_data()
    matcher = open_runtime(settings.model_copy(update={"data_dir": tmp_path}), pipeline)
    try:
        jpeg = lfw_photos()[0].path.read_bytes()
        assert retro_match(matcher, 1, [1], np.zeros((1, 128), np.float32)) == 0  # no sightings
        first = ingest_sighting(matcher, jpeg, NewSighting(app="test"))
        assert matcher.sighting_index.owner_count == 1
        case, _ = register_case(matcher, NewCase(
            category="child", name="later", missing_since=dt.date(2022, 3, 1),
            age_when_missing=8), [CasePhotoUpload(jpeg)])
        rows = sighting_candidates(matcher, first.sighting_id)
        assert [(row.case_id, row.rank) for row in rows] == [(case.id, 1)]
        assert rows[0].distance < 0.1  # the same picture, sighted before the case existed

        update_case(matcher, case.id, status=CaseStatus.CLOSED)
        # Another shot (the same photo again would be the first sighting): no candidate, closed.
        second = ingest_sighting(matcher, resaved(jpeg), NewSighting(app="test"))
        with matcher.sessions() as session:
            faces = list(session.scalars(select(Face).join(CasePhoto).where(
                CasePhoto.case_id == case.id)))
            vectors = np.stack([face.vector_for(matcher.model_id) for face in faces])
        assert retro_match(matcher, case.id, [f.id for f in faces], vectors) == 0
        assert sighting_candidates(matcher, second.sighting_id) == []
    finally:
        matcher.close()
