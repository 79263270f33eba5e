from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from matcher.store import (
    Candidate,
    CandidateStatus,
    CaseNotFound,
    CasePhoto,
    CaseStatus,
    Category,
    Decision,
    Face,
    InvalidRecord,
    NewCandidate,
    NewSighting,
    Role,
    Sex,
    Sighting,
    Verdict,
    add_candidates,
    add_case_photo,
    create_case,
    create_key,
    create_sighting,
    delete_case,
    get_case,
    get_sighting,
    list_candidates,
    list_cases,
    matchable,
    set_candidate_status,
    set_case_status,
    store_photo,
)
from matcher.store.models import MODEL_ID_LENGTH
from tests.store.builders import MODEL, new_case, new_face, pixels, vector


def _count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_case_round_trips(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        case_id = create_case(session, new_case(age_when_missing=8.5)).id
        session.commit()
    with factory() as session:
        case = get_case(session, case_id)
        assert case.category is Category.CHILD and case.sex is Sex.FEMALE
        assert case.name == "Ana" and case.status is CaseStatus.ACTIVE
        assert case.date_of_birth == dt.date(2015, 3, 2) and case.age_when_missing == 8.5
        assert case.missing_since == dt.date(2024, 5, 1)
        assert (case.last_seen_place, case.last_seen_lat, case.last_seen_lon) == (
            "Central station", 52.52, 13.405)
        assert case.description == "red jacket" and case.public_fields == ["name", "photos"]
        assert case.created_at.tzinfo is not None and case.photos == []
    with pytest.raises(CaseNotFound):
        get_case(session, 99_999)


def test_invalid_cases_are_refused(session: Session) -> None:
    with pytest.raises(InvalidRecord):
        create_case(session, new_case(public_fields=["reporter_contact"]))
    with pytest.raises(InvalidRecord):
        create_case(session, new_case(last_seen_lon=None))
    with pytest.raises(InvalidRecord):
        create_case(session, new_case(date_of_birth=None))
    with pytest.raises(ValueError):
        create_case(session, new_case(category="adult"))


def test_the_database_enforces_its_constraints(engine: Engine) -> None:
    insert = ("INSERT INTO cases (category, name, sex, missing_since, age_when_missing, "
              "description, status, public_fields, created_at, updated_at) VALUES "
              "(:category, 'x', 'male', '2024-01-01', :age, '', :status, '[]', "
              "'2024-01-01 00:00:00+00', '2024-01-01 00:00:00+00')")
    for values in ({"category": "adult", "age": 3, "status": "active"},
                   {"category": "child", "age": 3, "status": "lost"},
                   {"category": "child", "age": None, "status": "active"}):
        with pytest.raises(IntegrityError) as refused, engine.begin() as connection:
            connection.execute(text(insert), values)
        # A logged error or a 500's traceback must not carry the statement's values (names,
        # contacts). PostgreSQL's own DETAIL still quotes a failing row: see docs/operations.md.
        assert "SQL parameters hidden" in str(refused.value)


def test_case_photos_and_faces_round_trip_exactly(
    factory: sessionmaker[Session], data_dir: Path
) -> None:
    photo = store_photo(data_dir, pixels(1))
    faces = [new_face(1), new_face(2, unfit_reasons=("too_small",))]
    with factory() as session:
        case = create_case(session, new_case())
        row = add_case_photo(session, case.id, photo, faces, taken_on=dt.date(2023, 1, 2))
        photo_id = row.id
        session.commit()
    with factory() as session:
        loaded = get_case(session, case.id).photos
        assert [p.id for p in loaded] == [photo_id]
        assert (loaded[0].sha256, loaded[0].path) == (photo.sha256, photo.path)
        assert (loaded[0].width, loaded[0].height) == (64, 48)
        assert loaded[0].taken_on == dt.date(2023, 1, 2)
        for stored, original in zip(loaded[0].faces, faces, strict=True):
            [row] = stored.vectors
            assert (row.model_id, row.dim, len(row.descriptor)) == (MODEL, 128, 512)
            assert row.vector.dtype == np.float32
            assert row.vector.tobytes() == np.asarray(original.vector, np.float32).tobytes()
            assert stored.vector_for("another model") is None
            assert stored.box == [10.5, 20.0, 110.0, 140.25]
            assert np.array_equal(np.asarray(stored.landmarks, np.float32), original.landmarks)
            assert stored.score == pytest.approx(0.97)
        assert [f.fit for f in loaded[0].faces] == [True, False]
        assert loaded[0].faces[1].unfit_reasons == ["too_small"]
    with factory() as session, pytest.raises(CaseNotFound):
        add_case_photo(session, 99_999, photo)


def test_bad_descriptors_are_refused(session: Session, data_dir: Path) -> None:
    case = create_case(session, new_case())
    photo = store_photo(data_dir, pixels(1))
    for bad in (np.zeros((2, 64), np.float32), np.array([np.nan, 1.0]), np.array([], np.float32)):
        with pytest.raises(InvalidRecord):
            add_case_photo(session, case.id, photo, [new_face(1, vector=bad)])


def test_model_ids_up_to_the_column_width_are_kept_and_longer_ones_refused(
    factory: sessionmaker[Session], data_dir: Path
) -> None:
    longest = "dlib-resnet-v1-flip+sface-2021dec-flip-w0.50+proj-23d53894e553" + "+x" * 33
    assert len(longest) == MODEL_ID_LENGTH
    with factory() as session:
        case = create_case(session, new_case())
        photo = add_case_photo(session, case.id, store_photo(data_dir, pixels(1)),
                               [new_face(1, longest)])
        face_id = photo.faces[0].id
        session.commit()
        with pytest.raises(InvalidRecord, match="1 to 128 characters, got 129"):
            add_case_photo(session, case.id, store_photo(data_dir, pixels(2)),
                           [new_face(2, longest + "y")])
        session.rollback()
    with factory() as session:
        (face,) = session.scalars(select(Face)).all()
        assert face.id == face_id and np.array_equal(face.vector_for(longest), vector(1))


def test_a_sighting_round_trips_with_its_private_contact(
    factory: sessionmaker[Session], data_dir: Path
) -> None:
    photo = store_photo(data_dir, pixels(2))
    taken = dt.datetime(2024, 6, 1, 14, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    with factory() as session:
        key, _ = create_key(session, Role.TIP_APP, "tips app")
        new = NewSighting(app="tips app", taken_at=taken, lat=-33.9, lon=151.2,
                          api_key_id=key.id, reporter_contact="+49 170 000")
        assert "+49" not in repr(new)
        sighting_id = create_sighting(session, new, photo, [new_face(5)]).id
        session.commit()
    with factory() as session:
        sighting = get_sighting(session, sighting_id)
        assert sighting.taken_at == taken and sighting.uploaded_at.tzinfo is not None
        assert (sighting.lat, sighting.lon, sighting.app) == (-33.9, 151.2, "tips app")
        assert sighting.reporter_contact == "+49 170 000" and sighting.api_key_id == key.id
        assert sighting.sha256 == photo.sha256
        assert np.array_equal(sighting.faces[0].vector_for(MODEL), vector(5))
        assert sighting.faces[0].case_photo_id is None


def _case_with_faces(session: Session, data_dir: Path, seed: int, n: int = 2,
                     model_id: str = MODEL) -> tuple[int, list[int]]:
    case = create_case(session, new_case(f"case {seed}"))
    photo = add_case_photo(session, case.id, store_photo(data_dir, pixels(seed)),
                           [new_face(seed * 10 + i, model_id) for i in range(n)])
    return case.id, [f.id for f in photo.faces]


def _sighting(session: Session, data_dir: Path, seed: int) -> tuple[int, int]:
    sighting = create_sighting(session, NewSighting(app="tips"),
                               store_photo(data_dir, pixels(seed)), [new_face(seed)])
    return sighting.id, sighting.faces[0].id


def test_candidates_are_listed_and_reviewed(session: Session, data_dir: Path) -> None:
    case_a, faces_a = _case_with_faces(session, data_dir, 1)
    case_b, faces_b = _case_with_faces(session, data_dir, 2)
    sighting_id, face = _sighting(session, data_dir, 3)
    rows = add_candidates(session, [
        NewCandidate(face, case_a, faces_a[1], 0.41, 1, MODEL, 0.45),
        NewCandidate(face, case_b, faces_b[0], 0.52, 2, MODEL, 0.45),
    ])
    session.commit()
    assert [c.status for c in rows] == [CandidateStatus.PENDING] * 2
    assert [c.case_id for c in list_candidates(session, status="pending")] == [case_a, case_b]
    assert [c.case_id for c in list_candidates(session, case_id=case_b)] == [case_b]
    assert len(list_candidates(session, sighting_id=sighting_id)) == 2
    reviewed = set_candidate_status(session, rows[0].id, CandidateStatus.CONFIRMED, "inv 7")
    session.commit()
    assert reviewed.reviewed_by == "inv 7" and reviewed.reviewed_at is not None
    assert [c.id for c in list_candidates(session, status="pending")] == [rows[1].id]
    set_candidate_status(session, rows[1].id, CandidateStatus.NEEDS_INFO, "inv 7")
    session.commit()  # the CHECK constraint of migration 0002 allows it
    assert [c.id for c in list_candidates(session, status="needs_info")] == [rows[1].id]
    with pytest.raises(IntegrityError):  # one candidate per sighting face, case and model
        add_candidates(session, [NewCandidate(face, case_a, faces_a[0], 0.3, 1, MODEL, 0.45)])
    session.rollback()


def test_only_active_cases_not_yet_settled_stay_matchable(
    session: Session, data_dir: Path
) -> None:
    cases = [_case_with_faces(session, data_dir, seed) for seed in (1, 2, 3, 4)]
    (closed, _), (rejected, _), (kept, _), (other, _) = cases
    sighting_id, face = _sighting(session, data_dir, 5)
    _, second_face = _sighting(session, data_dir, 6)
    set_case_status(session, closed, "closed")
    # The latest decision on a pair counts: "other" was rejected, then reopened for more info.
    for case_id, verdict in ((rejected, Verdict.NEEDS_INFO), (rejected, Verdict.NOT_MATCH),
                             (other, Verdict.NOT_MATCH), (other, Verdict.NEEDS_INFO)):
        session.add(Decision(sighting_face_id=face, case_id=case_id, verdict=verdict,
                             reviewer="inv 7"))
        session.flush()
    found = [NewCandidate(face, case_id, faces[0], 0.3 + rank / 10, rank, MODEL, 0.45)
             for rank, (case_id, faces) in enumerate(cases, start=1)]
    found.append(NewCandidate(second_face, rejected, cases[1][1][0], 0.4, 1, MODEL, 0.45))
    kept_rows = matchable(session, found)
    # The rejection holds for that face only; ranks close up behind what was dropped.
    assert [(c.sighting_face_id, c.case_id, c.rank) for c in kept_rows] == [
        (face, kept, 1), (face, other, 2), (second_face, rejected, 1)]
    assert [c.distance for c in kept_rows[:2]] == [found[2].distance, found[3].distance]
    assert matchable(session, []) == []


def test_case_status_changes(session: Session) -> None:
    ids = [create_case(session, new_case(str(i))).id for i in range(3)]
    set_case_status(session, ids[0], "found")
    set_case_status(session, ids[1], CaseStatus.CLOSED)
    session.commit()
    assert [c.id for c in list_cases(session, status="active")] == [ids[2]]
    assert [c.id for c in list_cases(session, status="found")] == [ids[0]]
    assert [c.id for c in list_cases(session, limit=2)] == ids[:2]
    assert [c.id for c in list_cases(session, after_id=ids[1])] == [ids[2]]
    with pytest.raises(CaseNotFound):
        set_case_status(session, 99_999, "found")


def test_deleting_a_case_removes_its_photos_faces_and_candidates(
    session: Session, data_dir: Path, engine: Engine
) -> None:
    case_a, faces_a = _case_with_faces(session, data_dir, 1)
    case_b, faces_b = _case_with_faces(session, data_dir, 2)
    _, face = _sighting(session, data_dir, 3)
    add_candidates(session, [NewCandidate(face, case_a, faces_a[0], 0.4, 1, MODEL, 0.5),
                             NewCandidate(face, case_b, faces_b[0], 0.5, 2, MODEL, 0.5)])
    session.commit()
    delete_case(session, case_a)
    session.commit()
    assert _count(session, CasePhoto) == 1 and _count(session, Candidate) == 1
    assert _count(session, Face) == 3  # case b's two faces and the sighting's face
    # The database itself cascades, not only the ORM: delete with plain SQL.
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM cases WHERE id = :id"), {"id": case_b})
    session.expire_all()
    assert _count(session, CasePhoto) == 0 and _count(session, Candidate) == 0
    assert _count(session, Face) == 1


def test_deleting_a_sighting_or_key_cascades_or_unlinks(
    session: Session, data_dir: Path, engine: Engine
) -> None:
    case_a, faces_a = _case_with_faces(session, data_dir, 1)
    key, _ = create_key(session, Role.TIP_APP, "tips")
    sighting = create_sighting(session, NewSighting(app="tips", api_key_id=key.id),
                               store_photo(data_dir, pixels(9)), [new_face(9)])
    add_candidates(session, [NewCandidate(sighting.faces[0].id, case_a, faces_a[0], 0.4, 1,
                                          MODEL, 0.5)])
    other_id, _ = _sighting(session, data_dir, 8)
    session.commit()
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM api_keys WHERE id = :id"), {"id": key.id})
        connection.execute(text("DELETE FROM sightings WHERE id = :id"), {"id": other_id})
    session.expire_all()
    assert get_sighting(session, sighting.id).api_key_id is None  # kept, unlinked from the key
    assert _count(session, Sighting) == 1 and _count(session, Candidate) == 1
    session.delete(sighting)
    session.commit()
    assert _count(session, Candidate) == 0 and _count(session, Face) == 2  # case a's faces


def test_a_face_belongs_to_exactly_one_photo(engine: Engine) -> None:
    insert = ("INSERT INTO faces (box, landmarks, score, size_px, sharpness, unfit_reasons, fit) "
              "VALUES ('[]', '[]', 1, 1, 1, '[]', :fit)")
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text(insert), {"fit": True})
