"""The review queries on SQLite and PostgreSQL: the queue's order (by calibrated false match
rate, on one scale for every model), filters and paging, decisions, and the sighting faces the
sighting index is built from."""

from __future__ import annotations

import base64
import datetime as dt
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from matcher.calibration import Calibration, fit
from matcher.config import Settings
from matcher.store import (
    CandidateNotFound,
    CandidateStatus,
    Category,
    InvalidRecord,
    NewCandidate,
    NewSighting,
    Role,
    Verdict,
    add_candidates,
    add_case_photo,
    create_case,
    create_key,
    create_sighting,
    matchable,
    migrate,
    set_candidate_status,
    store_photo,
)
from matcher.store.candidates import candidate_distances, candidate_pairs
from matcher.store.db import add_math_functions
from matcher.store.decisions import decide, decisions_on
from matcher.store.face_rows import sighting_face_rows
from matcher.store.review import (
    Cursor,
    GeoCircle,
    Likelihood,
    ReviewQuery,
    cursor_after,
    likelihood_of,
    review_row,
    review_rows,
)
from matcher.store.sightings import fit_sighting_faces
from matcher.wiring import make_engine
from tests.store.builders import MODEL, new_case, new_face, pixels, vector

UTC = dt.UTC
BERLIN = (52.52, 13.405)
POTSDAM = (52.3906, 13.0645)  # 27 km from Berlin
MUNICH = (48.1374, 11.5755)  # 504 km from Berlin


def _when(month: int, day: int = 1) -> dt.datetime:
    return dt.datetime(2024, month, day, 12, tzinfo=UTC)


def _case(session: Session, data_dir: Path, seed: int, category: str = "child") -> tuple[int, int]:
    case = create_case(session, new_case(f"case {seed}", category=category))
    photo = add_case_photo(session, case.id, store_photo(data_dir, pixels(seed)),
                           [new_face(seed)], age_at_photo=8)
    return case.id, photo.faces[0].id


def _sighting(session: Session, data_dir: Path, seed: int,
              where: tuple[float, float] | None = None, taken: dt.datetime | None = None,
              uploaded: dt.datetime | None = None, faces: int = 1) -> tuple[int, list[int]]:
    lat, lon = where if where is not None else (None, None)
    row = create_sighting(
        session, NewSighting(app="tips", lat=lat, lon=lon, taken_at=taken,
                             uploaded_at=uploaded or _when(12)),
        store_photo(data_dir, pixels(1000 + seed)),
        [new_face(1000 + seed * 10 + i) for i in range(faces)])
    return row.id, [face.id for face in row.faces]


@pytest.fixture
def world(session: Session, data_dir: Path) -> dict[str, int]:
    """Two child cases and an elderly one; sightings in Berlin, Potsdam, Munich and nowhere;
    candidates under and over their threshold."""
    child, child_face = _case(session, data_dir, 1)
    other, other_face = _case(session, data_dir, 2)
    elder, elder_face = _case(session, data_dir, 3, category="elderly")
    berlin, (berlin_face,) = _sighting(session, data_dir, 1, BERLIN, taken=_when(6))
    potsdam, (potsdam_face,) = _sighting(session, data_dir, 2, POTSDAM, uploaded=_when(7))
    munich, (munich_face,) = _sighting(session, data_dir, 3, MUNICH, taken=_when(8))
    nowhere, (nowhere_face,) = _sighting(session, data_dir, 4, taken=_when(9))
    rows = add_candidates(session, [
        NewCandidate(berlin_face, child, child_face, 0.30, 1, MODEL, 0.6),
        NewCandidate(potsdam_face, elder, elder_face, 0.40, 1, MODEL, 0.6),
        NewCandidate(munich_face, child, child_face, 0.35, 1, MODEL, 0.6),
        NewCandidate(nowhere_face, other, other_face, 0.20, 1, MODEL, 0.6),
        NewCandidate(berlin_face, other, other_face, 0.50, 2, MODEL, 0.45),  # over its own
        NewCandidate(munich_face, other, other_face, 0.40, 2, MODEL, 0.6),
    ])
    session.commit()
    names = ("berlin_child", "potsdam_elder", "munich_child", "nowhere_other", "berlin_over",
             "munich_other")
    return {**{name: row.id for name, row in zip(names, rows, strict=True)},
            "child": child, "other": other, "elder": elder, "berlin": berlin,
            "potsdam": potsdam, "munich": munich, "nowhere": nowhere,
            "berlin_face": berlin_face, "child_face": child_face}


def _ids(session: Session, query: ReviewQuery | None = None, limit: int = 100) -> list[int]:
    return [row.candidate.id for row in review_rows(session, query or ReviewQuery(), limit)]


def test_the_queue_holds_pending_candidates_under_their_threshold_closest_first(
    session: Session, world: dict[str, int]
) -> None:
    assert _ids(session) == [world[n] for n in (  # a tie at 0.40: the older candidate first
        "nowhere_other", "berlin_child", "munich_child", "potsdam_elder", "munich_other")]
    # The row carries what a reviewer sees, loaded in the same query.
    row = review_rows(session, ReviewQuery(), 1)[0]
    assert row.sighting.id == world["nowhere"] and row.case.id == world["other"]
    assert row.case_photo is not None and row.case_photo.age_at_photo == 8
    assert row.sighting_face.sighting_id == world["nowhere"]
    assert review_row(session, world["berlin_over"]).candidate.distance == 0.5
    with pytest.raises(CandidateNotFound):
        review_row(session, 999_999)


def test_keyset_pages_cover_the_queue_once_even_with_equal_distances(
    session: Session, world: dict[str, int]
) -> None:
    whole = _ids(session)
    pages: list[int] = []
    after = None
    while True:
        rows = review_rows(session, ReviewQuery(), 2, after)
        if not rows:
            break
        pages += [row.candidate.id for row in rows]
        after = Cursor.decode(cursor_after(rows[-1], "distance").encode(), "distance")
    assert pages == whole
    with pytest.raises(InvalidRecord):
        Cursor.decode("not a cursor", "distance")
    with pytest.raises(InvalidRecord):  # a cursor of the other order
        Cursor.decode(Cursor(_when(1), 3).encode(), "distance")
    # A cursor of the raw-distance order (before revision 0008): its key means nothing now.
    with pytest.raises(InvalidRecord):
        Cursor.decode(base64.urlsafe_b64encode(b"d|0.4|7").decode().rstrip("="), "distance")
    for rate in (None, 0.0, 2e-4):
        cursor = Cursor(Likelihood(rate, 0.75), 12)
        assert Cursor.decode(cursor.encode(), "distance") == cursor


UNIT, PLDA, UNCALIBRATED = "unit-model", "plda-model", "uncalibrated-model"


def _calibration(model: str, centre: float, spread: float) -> Calibration:
    """Made-up distances of strangers (non-mated pairs) on a scale of the model's own."""
    distances = np.random.default_rng(7).normal(centre, spread, 5000).clip(0)
    return fit(model, "child", distances, searches=100, gallery_faces=50)


@pytest.fixture
def two_scales(session: Session, data_dir: Path) -> dict[str, int]:
    """Candidates of a unit-length model (strangers at 1.2 +- 0.1) and of a PLDA projection
    (ten times the scale), each rated by its own calibration as the service stores them, and
    two of a model without one; every pair of sighting face and case used once per model."""
    unit, plda = _calibration(UNIT, 1.2, 0.1), _calibration(PLDA, 12.0, 1.0)
    cases = [_case(session, data_dir, seed) for seed in range(2)]
    faces = [_sighting(session, data_dir, 40 + seed)[1][0] for seed in range(5)]
    pairs = [(face, case) for face in faces for case in cases]
    found = {  # name: (model, distance, threshold in force, calibration)
        # Closer than any stranger measured: one pair's worth (equal pairs: the same rate for
        # both models), so distance / threshold orders them.
        "unit_03": (UNIT, 0.3, 1.1, unit), "plda_40": (PLDA, 4.0, 11.0, plda),
        "unit_05": (UNIT, 0.5, 1.1, unit),
        "plda_90": (PLDA, 9.0, 11.0, plda),  # FMR about 0.0013 (3 sigma under the strangers)
        "unit_095": (UNIT, 0.95, 1.1, unit),  # 0.006 (2.5 sigma)
        "plda_100": (PLDA, 10.0, 11.0, plda),  # 0.023 (2 sigma)
        "unit_105": (UNIT, 1.05, 1.1, unit),  # 0.067 (1.5 sigma)
        "unit_over": (UNIT, 1.15, 1.1, unit),  # over its threshold: out of the queue
        # No calibration: after every rated one, by distance / threshold, however close.
        "none_03": (UNCALIBRATED, 0.3, 0.6, None), "none_01": (UNCALIBRATED, 0.1, 0.6, None),
    }
    rows = add_candidates(session, [
        NewCandidate(face, case, case_face, distance, 1, model, threshold,
                     None if calibration is None
                     else float(calibration.false_match_rate(distance)))
        for (face, (case, case_face)), (model, distance, threshold, calibration)
        in zip(pairs, found.values(), strict=True)])
    session.commit()
    return {name: row.id for name, row in zip(found, rows, strict=True)} | {
        "case": cases[0][0]}


MOST_LIKELY_FIRST = ("unit_03", "plda_40", "unit_05", "plda_90", "unit_095", "plda_100",
                     "unit_105", "none_01", "none_03")


def test_the_queue_orders_two_models_by_what_their_distances_mean_not_by_distance(
    session: Session, two_scales: dict[str, int]
) -> None:
    expected = [two_scales[name] for name in MOST_LIKELY_FIRST]
    assert _ids(session) == expected
    rows = {row.candidate.id: row.candidate for row in review_rows(session, ReviewQuery())}
    assert _ids(session) != sorted(rows, key=lambda i: (rows[i].distance, i))  # not raw
    # The order is the one `Likelihood` states, and every page of any size follows it.
    assert expected == sorted(rows, key=lambda i: likelihood_of(rows[i]).sort_key(i))
    for size in (1, 2, 4):
        pages: list[int] = []
        after = None
        while page := review_rows(session, ReviewQuery(), size, after):
            pages += [row.candidate.id for row in page]
            after = Cursor.decode(cursor_after(page[-1], "distance").encode(), "distance")
        assert pages == expected, size
    # Over its threshold: listed only when asked, at its rate's place, before the unrated.
    everything = _ids(session, ReviewQuery(under_threshold=False))
    assert everything == expected[:7] + [two_scales["unit_over"]] + expected[7:]
    # One case's page walks the other index, in the same order.
    mine = set(_ids(session, ReviewQuery(case_id=two_scales["case"])))
    assert _ids(session, ReviewQuery(case_id=two_scales["case"])) == [
        i for i in expected if i in mine]
    assert 0 < len(mine) < len(expected)


def test_a_candidate_s_rate_is_a_rate(session: Session, world: dict[str, int]) -> None:
    stored = review_row(session, world["berlin_child"]).candidate
    for bad in (float("nan"), -0.1, 1.5):
        with pytest.raises(InvalidRecord):
            add_candidates(session, [NewCandidate(
                stored.sighting_face_id, stored.case_id, stored.case_face_id, 0.3, 1,
                "another-model", 0.6, bad)])


def test_the_queue_filters_by_case_category_status_and_time(
    session: Session, world: dict[str, int]
) -> None:
    assert _ids(session, ReviewQuery(case_id=world["child"])) == [
        world["berlin_child"], world["munich_child"]]
    assert _ids(session, ReviewQuery(category=Category.ELDERLY)) == [world["potsdam_elder"]]
    set_candidate_status(session, world["munich_child"], CandidateStatus.NEEDS_INFO, "inv")
    set_candidate_status(session, world["berlin_child"], CandidateStatus.CONFIRMED, "inv")
    session.commit()
    assert _ids(session, ReviewQuery(statuses=(CandidateStatus.NEEDS_INFO,))) == [
        world["munich_child"]]
    assert world["berlin_child"] not in _ids(session, ReviewQuery(
        statuses=(CandidateStatus.PENDING, CandidateStatus.NEEDS_INFO)))
    assert _ids(session, ReviewQuery(statuses=tuple(CandidateStatus), under_threshold=False,
                                     case_id=world["other"])) == [
        world["nowhere_other"], world["munich_other"], world["berlin_over"]]
    # "seen": taken_at, else uploaded_at (Potsdam was uploaded in July, taken unknown).
    summer = ReviewQuery(since=_when(7), until=_when(9))
    assert set(_ids(session, summer)) == {world["potsdam_elder"], world["munich_other"]}
    taken = ReviewQuery(since=_when(7), until=_when(9), time_field="taken")
    assert _ids(session, taken) == [world["munich_other"]]
    uploaded = ReviewQuery(since=_when(12), time_field="uploaded")
    assert world["potsdam_elder"] not in _ids(session, uploaded)
    assert len(_ids(session, uploaded)) == 2  # the other sightings arrived in December


def test_the_queue_filters_by_distance_from_a_point_in_sql(
    session: Session, world: dict[str, int]
) -> None:
    def near(lat: float, lon: float, km: float) -> set[int]:
        return set(_ids(session, ReviewQuery(near=GeoCircle(lat, lon, km))))

    assert near(*BERLIN, 30) == {world["berlin_child"], world["potsdam_elder"]}
    assert near(*BERLIN, 20) == {world["berlin_child"]}  # Potsdam is 27 km away
    assert near(*BERLIN, 510) == {world["berlin_child"], world["potsdam_elder"],
                                  world["munich_child"], world["munich_other"]}
    assert world["nowhere_other"] not in near(0, 0, 20_000)  # no position: never near
    assert GeoCircle.maybe(None, None, None) is None
    with pytest.raises(InvalidRecord):
        GeoCircle.maybe(52.0, None, 10)
    with pytest.raises(InvalidRecord):
        GeoCircle(52.0, 13.0, 0)


def test_a_circle_across_the_antimeridian_and_around_a_pole(
    session: Session, data_dir: Path
) -> None:
    case, case_face = _case(session, data_dir, 9)
    east, (east_face,) = _sighting(session, data_dir, 11, (-17.7, 179.95))
    west, (west_face,) = _sighting(session, data_dir, 12, (-17.7, -179.95))  # 10.6 km apart
    pole, (pole_face,) = _sighting(session, data_dir, 13, (89.9, 45.0))
    add_candidates(session, [NewCandidate(face, case, case_face, 0.3, 1, MODEL, 0.6)
                             for face in (east_face, west_face, pole_face)])
    session.commit()

    def near(lat: float, lon: float, km: float) -> set[int]:
        return {row.sighting.id for row in review_rows(
            session, ReviewQuery(near=GeoCircle(lat, lon, km)), 10)}

    assert near(-17.7, 179.99, 15) == {east, west}
    assert near(-17.7, -179.99, 15) == {east, west}
    assert near(-17.7, 179.9, 8) == {east}
    assert near(90.0, 0.0, 20) == {pole}  # 11 km from the pole, at another longitude


def test_newest_sighting_first_order_pages_with_its_own_cursor(
    session: Session, world: dict[str, int]
) -> None:
    query = ReviewQuery(order="recent")
    first = review_rows(session, query, 2)
    # Seen: nowhere Sep (taken), munich Aug (x2 candidates).
    assert [row.sighting.id for row in first] == [world["nowhere"], world["munich"]]
    after = Cursor.decode(cursor_after(first[-1], "recent").encode(), "recent")
    rest = review_rows(session, query, 10, after)
    assert [row.sighting.id for row in rest] == [world["munich"], world["potsdam"],
                                                 world["berlin"]]


def test_decisions_set_the_status_and_a_not_match_is_remembered_for_the_pair(
    session: Session, data_dir: Path, world: dict[str, int]
) -> None:
    # The same pair found by another model: the decision closes that row too.
    other_model = add_candidates(session, [NewCandidate(
        world["berlin_face"], world["child"], world["child_face"], 0.2, 1, "other-model",
        0.5)])[0]
    key, _ = create_key(session, Role.INVESTIGATOR, "inv 7")
    done = decide(session, world["berlin_child"], "not_match", "his sister", key.id, "inv 7")
    session.commit()
    assert done.candidate.status is CandidateStatus.REJECTED
    assert done.candidate.reviewed_by == "inv 7" and done.candidate.reviewed_at is not None
    assert done.also == [other_model.id] and other_model.status is CandidateStatus.REJECTED
    assert (done.decision.verdict, done.decision.note, done.decision.api_key_id) == (
        Verdict.NOT_MATCH, "his sister", key.id)
    assert done.decision.sighting_face_id == world["berlin_face"]
    again = [NewCandidate(world["berlin_face"], world["child"], world["child_face"], 0.3, 1,
                          "third-model", 0.6)]
    assert matchable(session, again) == []

    later = decide(session, world["munich_child"], Verdict.NEEDS_INFO, "", None, "inv 8")
    decide(session, world["munich_child"], Verdict.MATCH, "it is her", None, "inv 9")
    session.commit()
    assert later.candidate.status is CandidateStatus.CONFIRMED  # the latest decision wins
    assert later.candidate.reviewed_by == "inv 9"
    found = decisions_on(session, {(world["munich"], world["child"]),
                                   (world["berlin"], world["child"]),
                                   (world["nowhere"], world["other"])})
    assert [d.verdict for d in found[(world["munich"], world["child"])]] == [
        Verdict.NEEDS_INFO, Verdict.MATCH]
    assert [d.note for d in found[(world["berlin"], world["child"])]] == ["his sister"]
    assert found[(world["nowhere"], world["other"])] == []
    assert decisions_on(session, []) == {}
    with pytest.raises(InvalidRecord):
        decide(session, world["munich_other"], "match", "x" * 2001)
    with pytest.raises(CandidateNotFound):
        decide(session, 999_999, "match")
    with pytest.raises(ValueError):
        decide(session, world["munich_other"], "maybe")


def test_decisions_on_any_face_of_the_sighting_are_listed(
    session: Session, data_dir: Path
) -> None:
    case, case_face = _case(session, data_dir, 5)
    group, faces = _sighting(session, data_dir, 20, faces=2)
    rows = add_candidates(session, [NewCandidate(face, case, case_face, 0.3, 1, MODEL, 0.6)
                                    for face in faces])
    decide(session, rows[0].id, "not_match", "", None, "inv")
    session.commit()
    listed = decisions_on(session, [(group, case)])[(group, case)]
    assert [d.sighting_face_id for d in listed] == [faces[0]]


def test_existing_pairs_and_distances_for_retro_matching(
    session: Session, world: dict[str, int]
) -> None:
    face = world["berlin_face"]
    # Any model's row pairs them: a pair is proposed once (revision 0010).
    assert candidate_pairs(session, world["child"], [face, 999]) == {face}
    assert candidate_pairs(session, world["child"], []) == set()
    assert sorted(candidate_distances(session, MODEL, [face])[face]) == [0.3, 0.5]


def test_sighting_face_rows_hold_fit_faces_of_the_model(session: Session, data_dir: Path) -> None:
    expected: dict[int, tuple[int, int]] = {}  # face id -> (sighting id, seed)
    for seed in range(3):
        seeds = [seed * 10 + i for i in range(3)]
        faces = [new_face(seeds[0]), new_face(seeds[1], unfit_reasons=("too_small",)),
                 new_face(seeds[2])]
        row = create_sighting(session, NewSighting(app="tips"),
                              store_photo(data_dir, pixels(seed)), faces)
        create_sighting(session, NewSighting(app="tips"), store_photo(data_dir, pixels(seed + 9)),
                        [new_face(seed + 500, model_id="other-model", dim=64)])
        expected.update({row.faces[i].id: (row.id, seeds[i]) for i in (0, 2)})
    case, _ = _case(session, data_dir, 7)  # case faces are never sighting faces
    session.commit()

    batches = list(sighting_face_rows(session, MODEL, batch_size=4))
    assert [len(ids) for ids, _, _ in batches] == [4, 2]
    ids = np.concatenate([b[0] for b in batches])
    owners = np.concatenate([b[1] for b in batches])
    vectors = np.concatenate([b[2] for b in batches])
    assert ids.dtype == owners.dtype == np.int64 and vectors.dtype == np.float32
    assert ids.tolist() == sorted(expected)
    assert owners.tolist() == [expected[int(i)][0] for i in ids]
    for face_id, row in zip(ids, vectors, strict=True):
        assert row.tobytes() == vector(expected[int(face_id)][1]).tobytes()
    assert [b[2].shape for b in sighting_face_rows(session, "other-model")] == [(3, 64)]
    assert list(sighting_face_rows(session, "no-such-model")) == []
    first = int(owners[0])
    assert [f.id for f in fit_sighting_faces(session, first, MODEL)] == [
        i for i in ids.tolist() if expected[i][0] == first]


def test_sin_and_cos_are_added_where_sqlite_lacks_them() -> None:
    connection = sqlite3.connect(":memory:")
    add_math_functions(connection, force=True)
    assert connection.execute("SELECT sin(0.5), cos(0), sin(NULL)").fetchone() == (
        pytest.approx(0.479425538604203), 1.0, None)
    connection.close()


RATED_CURSOR = Cursor(Likelihood(1e-3, 0.4), 7)
UNRATED_CURSOR = Cursor(Likelihood(None, 0.4), 7)


@pytest.mark.parametrize(("query", "after", "index"), [
    (ReviewQuery(), None, "ix_candidates_status_likelihood"),
    (ReviewQuery(), RATED_CURSOR, "ix_candidates_status_likelihood"),
    (ReviewQuery(), UNRATED_CURSOR, "ix_candidates_status_likelihood"),
    (ReviewQuery(case_id=3), None, "ix_candidates_case_id_status_likelihood"),
    (ReviewQuery(case_id=3), RATED_CURSOR, "ix_candidates_case_id_status_likelihood"),
    (ReviewQuery(case_id=3), UNRATED_CURSOR, "ix_candidates_case_id_status_likelihood"),
])
def test_sqlite_walks_an_index_for_a_queue_page_instead_of_sorting(
    tmp_path: Path, query: ReviewQuery, after: Cursor | None, index: str
) -> None:
    """The plans SQLite chooses without ANALYZE statistics, as the service runs them: the same
    on an empty store as on a large one (scripts/bench_queue.py times them). On an empty store
    a page asks for the rated candidates, then the unrated ones: both queries seek and walk the
    index in order."""
    engine = make_engine(Settings(data_dir=tmp_path))
    migrate(engine)
    seen: list[tuple[str, object]] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _c, _cur, statement, parameters, *_: seen.append((statement, parameters)))
    with Session(engine) as session:
        review_rows(session, query, after=after)
    with engine.connect() as connection:
        plans = [[row[-1] for row in connection.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {statement}", parameters).all()]
            for statement, parameters in seen if statement.startswith("SELECT")]
    engine.dispose()
    assert len(plans) == (1 if after is UNRATED_CURSOR else 2)
    for plan in plans:
        assert any(f"USING INDEX {index} " in line for line in plan), plan
        assert not any("TEMP B-TREE" in line for line in plan), plan
    if after is not None:  # the cursor's row value bounds the search: a seek, not a walk
        assert any(">" in line.split("USING INDEX")[-1] for line in plans[0]), plans[0]
