"""Candidates carry the calibrated false match rate of their distance, stored with them (ingest
and retro-matching) or filled at the next start, and the queue orders two models' candidates
by it: real photos, the real pipeline, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import numpy as np
from sqlalchemy import select

from matcher.calibration import Calibration, calibration_path, fit
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import (
    CasePhotoUpload,
    Runtime,
    ingest_sighting,
    open_runtime,
    register_case,
)
from matcher.service.likelihood import fill_false_match_rates
from matcher.service.review import decide_candidate, review_queue
from matcher.store import (
    SYSTEM,
    Candidate,
    CandidateStatus,
    NewCandidate,
    NewCase,
    NewSighting,
    add_candidates,
    add_case_photo,
    create_case,
    create_sighting,
    set_candidate_status,
    store_photo,
)
from matcher.store.review import ReviewQuery, likelihood_of
from tests.data import lfw_photos, require_test_data
from tests.store.builders import new_case, new_face, pixels

OLD = "dlib-resnet-v1+proj-0123456789ab"  # the model served before a reindex: a PLDA scale
# LFW dev photos: 0, 1 and 2 are one person, 4 and 6 two others (tests/api/test_calibration_swap)
SAME, AGAIN, THIRD_TIME, STRANGER, OTHER = 0, 1, 2, 4, 6


def _calibration(model: str, category: str, centre: float, spread: float) -> Calibration:
    """Made-up distances of strangers on the model's own scale."""
    distances = np.random.default_rng(5).normal(centre, spread, 20_000).clip(0)
    return fit(model, category, distances, searches=400, gallery_faces=50)


def _photo(index: int) -> bytes:
    return lfw_photos()[index].path.read_bytes()


def _case(matcher: Runtime, category: str, photo: int) -> int:
    case, _ = register_case(matcher, NewCase(
        category=category, name=f"{category} {photo}", missing_since=dt.date(2022, 3, 1),
        age_when_missing=8 if category == "child" else 80), [CasePhotoUpload(_photo(photo))])
    return case.id


def _candidates(matcher: Runtime) -> list[Candidate]:
    with matcher.sessions() as session:
        rows = list(session.scalars(select(Candidate).order_by(Candidate.id)))
        for row in rows:
            _ = row.case
        return rows


def test_the_queue_orders_by_calibrated_rate_across_models_and_fills_old_rows_at_start(
    settings: Settings, pipeline: FacePipeline, db_url: str | None, tmp_path: Path
) -> None:
    require_test_data()
    app = settings.model_copy(update={"data_dir": tmp_path, "database_url": db_url})
    model = pipeline.model_id
    child = _calibration(model, "child", 0.85, 0.08)
    anyone = _calibration(model, "any", 0.95, 0.1)  # the elderly case's: no elderly one
    old = _calibration(OLD, "child", 12.0, 1.0)  # ten times the scale

    # Before any calibration: candidates are stored without a rate.
    matcher = open_runtime(app, pipeline)
    try:
        kid, elder = _case(matcher, "child", SAME), _case(matcher, "elderly", STRANGER)
        ingest_sighting(matcher, _photo(AGAIN), NewSighting(app="test"))
        first = _candidates(matcher)
        assert {row.case_id for row in first} == {kid, elder}
        assert all(row.false_match_rate is None for row in first)
        rejected = next(row for row in first if row.case_id == elder)
        decide_candidate(matcher, SYSTEM, rejected.id, "not_match")
        # What the model before a reindex found, on its own scale: rated by its calibration
        # when it was stored, or (stored before revision 0008) not at all.
        mine = next(row for row in first if row.case_id == kid)
        with matcher.sessions() as session:
            earlier = add_candidates(session, [
                NewCandidate(mine.sighting_face_id, kid, mine.case_face_id, 8.0, 1, OLD, 11.0,
                             float(old.false_match_rate(8.0))),
                NewCandidate(mine.sighting_face_id, elder, rejected.case_face_id, 10.5, 2, OLD,
                             11.0),
            ])
            session.commit()
            earlier_ids = [row.id for row in earlier]
    finally:
        matcher.close()

    # `matcher calibrate` made the serving model's calibrations (the old model's file is there
    # too, as after a reindex): the next start rates the open candidates of the serving model.
    for calibration in (child, anyone, old):
        calibration.save(calibration_path(app.calibration_dir, calibration.category,
                                          calibration.model_id))
    matcher = open_runtime(app, pipeline)
    try:
        # Stored from now on with their rate: a new sighting, and a new case matched against
        # the stored sightings (retro-matching).
        ingest_sighting(matcher, _photo(OTHER), NewSighting(app="test"))
        late = _case(matcher, "child", THIRD_TIME)
        rows = _candidates(matcher)
        assert any(row.case_id == late for row in rows)
        for row in rows:
            if row.id in earlier_ids:
                continue
            want = child if row.case.category == "child" else anyone
            if row.id == rejected.id:  # decided: not in any queue, left as it was
                assert row.false_match_rate is None
            else:
                assert row.model_id == model
                assert row.false_match_rate == float(want.false_match_rate(row.distance)), row.id
        by_id = {row.id: row for row in rows}
        assert by_id[earlier_ids[0]].false_match_rate == float(old.false_match_rate(8.0))
        assert by_id[earlier_ids[1]].false_match_rate is None  # not the serving model's

        # The queue, a page of two at a time: by rate whatever the model, the unrated last.
        query = ReviewQuery(under_threshold=False)
        listed: list[int] = []
        cursor = None
        while True:
            page = review_queue(matcher, SYSTEM, query, limit=2, cursor=cursor)
            listed += [entry.candidate_id for entry in page.entries]
            if (cursor := page.next_cursor) is None:
                break
        open_rows = [row for row in rows if row.status is CandidateStatus.PENDING]
        assert listed == [row.id for row in sorted(
            open_rows, key=lambda row: likelihood_of(row).sort_key(row.id))]
        assert listed[-1] == earlier_ids[1]  # the one without a rate, though its ratio < 1
        # The old model's candidate at distance 8.0 (one pair's worth on its scale) is ahead
        # of the serving model's strangers at distances under 1: raw distance would put it last.
        strangers = [row.id for row in open_rows
                     if row.model_id == model and row.distance > 0.7]
        assert strangers and all(listed.index(earlier_ids[0]) < listed.index(i)
                                 for i in strangers)
        assert listed != [row.id for row in sorted(open_rows,
                                                   key=lambda row: (row.distance, row.id))]
    finally:
        matcher.close()


def test_the_fill_rates_open_candidates_of_the_serving_model_a_batch_at_a_time(
    matcher: Runtime,
) -> None:
    """Store rows as earlier versions left them; the fill walks them two at a time."""
    model, data_dir = matcher.model_id, matcher.settings.data_dir
    child = _calibration(model, "child", 0.85, 0.08)
    with matcher.sessions() as session:
        cases = {}
        for seed, category in enumerate(("child", "elderly")):
            case = create_case(session, new_case(category, category=category))
            photo = add_case_photo(session, case.id, store_photo(data_dir, pixels(seed)),
                                   [new_face(seed, model_id=model)])
            cases[category] = (case.id, photo.faces[0].id)
        faces = [create_sighting(session, NewSighting(app="test"),
                                 store_photo(data_dir, pixels(100 + i)),
                                 [new_face(100 + i, model_id=model)]).faces[0].id
                 for i in range(8)]
        kid, kid_face = cases["child"]
        elder, elder_face = cases["elderly"]
        rows = add_candidates(session, [
            *(NewCandidate(faces[i], kid, kid_face, 0.5 + 0.05 * i, 1, model, 0.6)
              for i in range(6)),  # 0-5: rated (4 made needs_info, 5 confirmed below)
            NewCandidate(faces[6], kid, kid_face, 0.7, 1, model, 0.6, 0.25),  # has a rate
            NewCandidate(faces[7], elder, elder_face, 0.4, 1, model, 0.6),  # no calibration
            NewCandidate(faces[7], kid, kid_face, 0.4, 1, OLD, 11.0),  # another model's
        ])
        set_candidate_status(session, rows[4].id, CandidateStatus.NEEDS_INFO, "inv")
        set_candidate_status(session, rows[5].id, CandidateStatus.CONFIRMED, "inv")
        session.commit()
        ids = [row.id for row in rows]
    matcher.serving = replace(matcher.serving, calibrations={"child": child})

    assert fill_false_match_rates(matcher, batch_size=2) == 5
    assert fill_false_match_rates(matcher, batch_size=2) == 0  # nothing left to rate
    by_id = {row.id: row for row in _candidates(matcher)}
    for i in range(5):
        row = by_id[ids[i]]
        assert row.false_match_rate == float(child.false_match_rate(row.distance)), i
    assert [by_id[i].false_match_rate for i in ids[5:]] == [None, 0.25, None, None]
