from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from matcher.store import (
    FaceSetSummary,
    FaceVector,
    NewSighting,
    active_case_face_rows,
    active_case_face_summary,
    add_case_photo,
    create_case,
    create_sighting,
    set_case_status,
    store_photo,
)
from matcher.store.digest import FaceSetDigest
from matcher.store.face_rows import sighting_face_rows, sighting_face_summary
from matcher.store.vectors import (
    Coverage,
    add_missing_vectors,
    add_vectors,
    cases_without_vectors,
    coverage,
    vectors_to_derive,
)
from tests.store.builders import MODEL, new_case, new_face, pixels, vector


def test_rows_hold_only_active_cases_of_the_model(session: Session, data_dir: Path) -> None:
    expected: dict[int, tuple[int, int]] = {}  # face id -> (case id, seed)
    for seed, status in ((1, "active"), (2, "found"), (3, "closed"), (4, "active")):
        case = create_case(session, new_case(f"case {seed}"))
        photo = store_photo(data_dir, pixels(seed))
        seeds = [seed * 100 + i for i in range(3)]
        row = add_case_photo(session, case.id, photo, [new_face(s) for s in seeds])
        add_case_photo(session, case.id, store_photo(data_dir, pixels(seed + 50)),
                       [new_face(seed + 1000, model_id="other-model", dim=64)])
        set_case_status(session, case.id, status)
        if status == "active":
            expected.update({f.id: (case.id, s) for f, s in zip(row.faces, seeds, strict=True)})
    session.commit()

    batches = list(active_case_face_rows(session, MODEL, batch_size=4))
    assert [len(ids) for ids, _, _ in batches] == [4, 2]
    ids = np.concatenate([b[0] for b in batches])
    owners = np.concatenate([b[1] for b in batches])
    vectors = np.concatenate([b[2] for b in batches])
    assert ids.dtype == owners.dtype == np.int64 and vectors.dtype == np.float32
    assert ids.tolist() == sorted(expected)
    assert owners.tolist() == [expected[i][0] for i in ids]
    for face_id, row in zip(ids, vectors, strict=True):
        assert row.tobytes() == vector(expected[int(face_id)][1]).tobytes()
    other = list(active_case_face_rows(session, "other-model"))
    assert len(other) == 1 and other[0][2].shape == (2, 64)
    assert list(active_case_face_rows(session, "no-such-model")) == []


def test_the_summary_changes_when_the_face_set_does(session: Session, data_dir: Path) -> None:
    empty = active_case_face_summary(session, MODEL)
    assert empty == FaceSetSummary(0, hashlib.sha256().hexdigest())
    cases = [create_case(session, new_case(str(i))) for i in range(2)]
    for i, case in enumerate(cases):
        add_case_photo(session, case.id, store_photo(data_dir, pixels(i)), [new_face(i)])
    session.commit()
    both = active_case_face_summary(session, MODEL)
    assert both.count == 2
    set_case_status(session, cases[0].id, "found")
    session.commit()
    one = active_case_face_summary(session, MODEL)
    assert one.count == 1 and one != both
    set_case_status(session, cases[0].id, "active")
    session.commit()
    assert active_case_face_summary(session, MODEL) == both


def test_the_summary_tells_apart_face_sets_of_equal_count_id_sum_and_largest_id(
    session: Session, data_dir: Path
) -> None:
    """{2, 3, 5} and {1, 4, 5} (the active faces before and after X reopens and Y is found):
    a count, an id sum and a largest id cannot tell them apart; the digest of the pairs can."""
    x, y, z = (create_case(session, new_case(name)) for name in "XYZ")
    order = [x, y, y, x, z]
    faces = [add_case_photo(session, case.id, store_photo(data_dir, pixels(20 + i)),
                            [new_face(20 + i)]).faces[0].id for i, case in enumerate(order)]
    session.commit()
    base = faces[0] - 1  # ids need not start at 1 (PostgreSQL's sequences, earlier tests)
    assert [face - base for face in faces] == [1, 2, 3, 4, 5]
    set_case_status(session, x.id, "closed")
    session.commit()
    before = active_case_face_summary(session, MODEL)
    set_case_status(session, x.id, "active")
    set_case_status(session, y.id, "found")
    session.commit()
    after = active_case_face_summary(session, MODEL)
    held = [[faces[1], faces[2], faces[4]], [faces[0], faces[3], faces[4]]]
    assert [(len(ids), sum(ids), max(ids)) for ids in held] == [(3, 3 * base + 10, base + 5)] * 2
    assert before.count == after.count == 3 and before != after


def test_the_summary_is_the_digest_an_index_computes_of_what_it_holds(
    session: Session, data_dir: Path
) -> None:
    for seed in range(3):
        case = create_case(session, new_case(f"case {seed}"))
        add_case_photo(session, case.id, store_photo(data_dir, pixels(40 + seed)),
                       [new_face(40 + seed * 10 + i) for i in range(3)])
        create_sighting_with_faces(session, data_dir, seed)
    session.commit()
    for summary, rows in ((active_case_face_summary, active_case_face_rows),
                          (sighting_face_summary, sighting_face_rows)):
        digest = FaceSetDigest()  # what the service computes from an index's (sorted) arrays
        for ids, owners, _ in rows(session, MODEL, batch_size=4):
            digest.update(ids, owners)
        wanted = summary(session, MODEL)
        assert wanted == digest.summary() and wanted.count > 0
    # The batches the store's rows are hashed in do not change the digest.
    assert active_case_face_summary(session, MODEL, batch_size=2) == \
        active_case_face_summary(session, MODEL)


def create_sighting_with_faces(session: Session, data_dir: Path, seed: int) -> None:
    create_sighting(session, NewSighting(app="test"), store_photo(data_dir, pixels(60 + seed)),
                    [new_face(60 + seed * 10 + i) for i in range(2)])


def test_vectors_to_derive_are_those_the_target_model_lacks(session: Session, data_dir: Path
                                                            ) -> None:
    case = create_case(session, new_case("derive"))
    row = add_case_photo(session, case.id, store_photo(data_dir, pixels(7)),
                         [new_face(s) for s in (70, 71, 72, 73)])
    faces = [f.id for f in row.faces]
    add_vectors(session, "projected", [(faces[1], vector(1, dim=16))])  # already derived
    session.commit()
    derived = vectors_to_derive(session, MODEL, "projected", limit=2)
    assert [face_id for face_id, _ in derived] == [faces[0], faces[2]]
    assert derived[0][1].tobytes() == vector(70).tobytes()
    rest = vectors_to_derive(session, MODEL, "projected", after_id=faces[2])
    assert [face_id for face_id, _ in rest] == [faces[3]]
    assert vectors_to_derive(session, "no-such-model", "projected") == []


def test_missing_vectors_leave_those_another_process_wrote(session: Session, data_dir: Path
                                                           ) -> None:
    """Two processes moving to a new model embed the same faces (service/model_follow.py):
    the second writer keeps the first one's vectors and adds only what was missing."""
    case = create_case(session, new_case("twice"))
    row = add_case_photo(session, case.id, store_photo(data_dir, pixels(8)),
                         [new_face(s) for s in (80, 81)])
    first, second = (f.id for f in row.faces)
    add_vectors(session, "new", [(first, vector(1))])
    session.commit()
    add_missing_vectors(session, "new", [(first, vector(2)), (second, vector(3))])
    session.commit()
    stored = {v.face_id: v.vector for v in session.scalars(
        select(FaceVector).where(FaceVector.model_id == "new"))}
    assert stored[first].tobytes() == vector(1).tobytes()
    assert stored[second].tobytes() == vector(3).tobytes()


def test_a_models_coverage_counts_faces_and_active_cases_it_has_no_vector_of(
    session: Session, data_dir: Path
) -> None:
    cases = [create_case(session, new_case(name)) for name in ("covered", "lost", "closed")]
    faces = {}
    for n, case in enumerate(cases):
        photo = add_case_photo(session, case.id, store_photo(data_dir, pixels(80 + n)),
                               [new_face(80 + n), new_face(90 + n)])
        faces[case.id] = [f.id for f in photo.faces]
    create_case(session, new_case("no photo yet"))  # no face: nothing a model could miss
    set_case_status(session, cases[2].id, "closed")
    add_vectors(session, "other", [(faces[cases[0].id][1], vector(1))])
    session.commit()
    assert cases_without_vectors(session, "other") == [cases[1].id]
    assert cases_without_vectors(session, MODEL) == []
    # Six faces, one with an "other" vector; every one with a MODEL vector.
    assert coverage(session, "other") == Coverage(5, [cases[1].id])
    assert coverage(session, MODEL) == Coverage(0, [])
