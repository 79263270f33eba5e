"""An inconclusive candidate under its threshold keeps its sighting from the retention purge,
as a waiting one does: it may be the missing person, and a later look (a better case photo)
needs the sighting. Once settled as `not_match`, the sighting goes like any unmatched one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import (
    CasePhotoUpload,
    ingest_sighting,
    open_runtime,
    purge_sightings,
    register_case,
    sighting_candidates,
)
from matcher.service.review import decide_candidate
from matcher.store import NewCase, NewSighting
from matcher.vocabulary import SYSTEM, CandidateStatus, Verdict
from tests.data import fgnet_photo, require_test_data

OLD = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)


def test_an_inconclusive_sighting_is_kept_until_settled(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    require_test_data()
    matcher = open_runtime(settings.model_copy(update={"data_dir": tmp_path}), pipeline)
    try:
        register_case(matcher, NewCase(category="child", name="A", age_when_missing=8,
                                       missing_since=dt.date(2019, 1, 1)),
                      [CasePhotoUpload(fgnet_photo("001A08.JPG"))])
        sighting = ingest_sighting(matcher, fgnet_photo("001A10.JPG"),
                                   NewSighting(app="tips", uploaded_at=OLD)).sighting_id
        [candidate] = sighting_candidates(matcher, sighting)
        assert candidate.distance <= candidate.threshold
        result = decide_candidate(matcher, SYSTEM, candidate.id, Verdict.INCONCLUSIVE)
        assert result.candidate_status is CandidateStatus.INCONCLUSIVE

        assert purge_sightings(matcher, 365).sightings == 0
        decide_candidate(matcher, SYSTEM, candidate.id, Verdict.NOT_MATCH, "a cousin")
        assert purge_sightings(matcher, 365).sightings == 1
    finally:
        matcher.close()
