"""The index saved at a clean stop: loaded only when it holds exactly the store's faces, never
twice, never after a crash; and face ids never come back (SQLite), so no index confuses two
faces."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict
from pathlib import Path

import faiss
import numpy as np
import pytest
from alembic import command

from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.index import persist
from matcher.service import (
    CasePhotoUpload,
    Runtime,
    add_photo,
    erase,
    ingest_sighting,
    open_runtime,
    register_case,
    remove_photo,
    sighting_candidates,
    update_case,
)
from matcher.service.saved_index import fingerprint
from matcher.store import (
    CaseStatus,
    NewCase,
    NewSighting,
    session_factory,
    session_scope,
    set_case_status,
)
from matcher.store.db import alembic_config
from matcher.wiring import make_engine
from tests.data import lfw_photos, require_test_data

SAVED_INDEX = "matcher.service.saved_index"


@pytest.fixture
def app_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"data_dir": tmp_path})


def photos(*picks: int) -> list[bytes]:
    """LFW photos 0-7 each hold one face fit for matching (0-3 one person, 4-5 another, 6-7 a
    third)."""
    require_test_data()
    every = lfw_photos()
    return [every[pick].path.read_bytes() for pick in picks]


def new_case(name: str) -> NewCase:
    return NewCase(category="elderly", name=name, missing_since=dt.date(2022, 3, 1),
                   age_when_missing=81)


def assert_found_first(matcher: Runtime, photo: bytes, case_id: int) -> None:
    """A sighting of a case's own photo finds that case first, at about distance 0."""
    result = ingest_sighting(matcher, photo, NewSighting(app="test"))
    best = sighting_candidates(matcher, result.sighting_id)[0]
    assert (best.case_id, best.rank) == (case_id, 1) and best.distance < 0.1


def saved_files(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.index_dir.rglob("*") if p.is_file())


def test_a_crash_after_an_id_was_deleted_and_given_out_again_loads_no_stale_index(
    app_settings: Settings, pipeline: FacePipeline, caplog: pytest.LogCaptureFixture
) -> None:
    """The review's repro: A's photo removed, B's added, the process killed. The old fingerprint
    (count, id sum, largest id) matched, since SQLite gave B's face the id of A's deleted one: a
    sighting of the deleted photo then matched A at distance 0 and B was not searchable."""
    deleted, current = photos(0, 4)
    first = open_runtime(app_settings, pipeline)
    a, added = register_case(first, new_case("A"), [CasePhotoUpload(deleted)])
    b, _ = register_case(first, new_case("B"))
    first.close()

    second = open_runtime(app_settings, pipeline)
    assert saved_files(app_settings) == []  # read once, then gone
    old_face = second.index.faces_of(a.id).tolist()
    remove_photo(second, a.id, added[0].photo_id)
    add_photo(second, b.id, CasePhotoUpload(current))
    new_face = second.index.faces_of(b.id).tolist()
    assert new_face[0] > old_face[0]  # never the deleted face's id
    second.engine.dispose()  # killed: close() never ran

    with caplog.at_level(logging.INFO, logger=SAVED_INDEX):
        third = open_runtime(app_settings, pipeline)
    try:
        assert "loaded the saved" not in caplog.text
        assert third.index.faces_of(a.id).size == 0
        assert third.index.faces_of(b.id).tolist() == new_face
        of_deleted = ingest_sighting(third, deleted, NewSighting(app="test"))
        rows = sighting_candidates(third, of_deleted.sighting_id)
        assert all(row.case_id != a.id for row in rows)
        assert_found_first(third, current, b.id)
    finally:
        third.close()


def test_a_clean_copy_of_a_different_face_set_with_the_same_count_sum_and_max_is_rebuilt(
    app_settings: Settings, pipeline: FacePipeline, caplog: pytest.LogCaptureFixture
) -> None:
    """Active faces {2, 3, 5} saved at a clean stop; the store changed behind the service's back
    (a restore, another process) to {1, 4, 5}: same count, id sum and largest id."""
    x0, y0, y1, x1, z0 = photos(0, 4, 5, 1, 6)
    first = open_runtime(app_settings, pipeline)
    x, _ = register_case(first, new_case("X"), [CasePhotoUpload(x0)])
    y, _ = register_case(first, new_case("Y"), [CasePhotoUpload(y0), CasePhotoUpload(y1)])
    add_photo(first, x.id, CasePhotoUpload(x1))
    z, _ = register_case(first, new_case("Z"), [CasePhotoUpload(z0)])
    ids = {case.name: first.index.faces_of(case.id).tolist() for case in (x, y, z)}
    assert ids == {"X": [1, 4], "Y": [2, 3], "Z": [5]}
    update_case(first, x.id, status=CaseStatus.CLOSED)
    first.close()

    engine = make_engine(app_settings)
    try:
        with session_scope(session_factory(engine)) as session:
            set_case_status(session, x.id, CaseStatus.ACTIVE)
            set_case_status(session, y.id, CaseStatus.FOUND)
    finally:
        engine.dispose()

    with caplog.at_level(logging.INFO, logger=SAVED_INDEX):
        second = open_runtime(app_settings, pipeline)
    try:
        assert "saved active case index is stale" in caplog.text
        held = {case.name: second.index.faces_of(case.id).tolist() for case in (x, y, z)}
        assert held == {"X": [1, 4], "Y": [], "Z": [5]}
    finally:
        second.close()


def test_only_a_copy_saved_by_a_clean_stop_is_loaded(
    app_settings: Settings, pipeline: FacePipeline, caplog: pytest.LogCaptureFixture
) -> None:
    """A copy saved while serving went on (earlier versions saved one after a reindex's swap)
    is not loaded after a crash, even when nothing changed since: it was never a clean
    stop's."""
    first = open_runtime(app_settings, pipeline)
    register_case(first, new_case("A"), [CasePhotoUpload(photos(0)[0])])
    with first.index.read_state() as state:
        held = fingerprint(state.owners)
    persist.save(first.index, app_settings.index_dir / "active-cases",
                 source={"active_case_faces": asdict(held)})
    first.engine.dispose()  # killed

    with caplog.at_level(logging.INFO, logger=SAVED_INDEX):
        second = open_runtime(app_settings, pipeline)
    assert "loaded the saved" not in caplog.text
    assert "was not saved at a clean stop" in caplog.text
    assert len(second.index) == 1 and saved_files(app_settings) == []
    second.close()

    caplog.clear()
    with caplog.at_level(logging.INFO, logger=SAVED_INDEX):
        third = open_runtime(app_settings, pipeline)
    third.close()
    assert "loaded the saved active case index: 1 faces" in caplog.text


def test_an_erased_case_leaves_no_vector_in_a_saved_index_after_a_crash(
    app_settings: Settings, pipeline: FacePipeline
) -> None:
    kept_photo, erased_photo = photos(0, 4)
    first = open_runtime(app_settings, pipeline)
    kept, _ = register_case(first, new_case("kept"), [CasePhotoUpload(kept_photo)])
    erased, _ = register_case(first, new_case("erased"), [CasePhotoUpload(erased_photo)])
    first.close()
    assert any(name.endswith(".npz") for name in saved_files(app_settings))

    second = open_runtime(app_settings, pipeline)
    erase(second, erased.id)
    second.engine.dispose()  # killed before a clean stop rewrote the saved copy
    assert saved_files(app_settings) == []  # nothing of the erased child's face on disk

    third = open_runtime(app_settings, pipeline)
    try:
        assert third.index.owner_count == 1 and third.index.faces_of(kept.id).size == 1
    finally:
        third.close()


def test_a_copy_saved_before_a_migration_is_not_loaded(
    app_settings: Settings, pipeline: FacePipeline, caplog: pytest.LogCaptureFixture
) -> None:
    """Revision 0007 copies every table; one saved before a migration is not trusted."""
    first = open_runtime(app_settings, pipeline)
    register_case(first, new_case("A"), [CasePhotoUpload(photos(0)[0])])
    first.close()
    engine = make_engine(app_settings)
    try:
        command.downgrade(alembic_config(engine), "0006")
    finally:
        engine.dispose()

    with caplog.at_level(logging.INFO, logger=SAVED_INDEX):
        second = open_runtime(app_settings, pipeline)
    try:
        assert "the store was migrated: the saved active case index is not used" in caplog.text
        assert "loaded the saved" not in caplog.text
        assert len(second.index) == 1 and saved_files(app_settings) == []
    finally:
        second.close()


def test_a_face_removed_from_an_hnsw_index_does_not_block_the_next_photo(
    app_settings: Settings, pipeline: FacePipeline
) -> None:
    """HNSW (the kind from 100,000 faces up) keeps a removed id as a tombstone and refuses it
    back: with SQLite reusing the id, the next photo was stored but never searchable (500)."""
    wrong, right = photos(4, 0)
    matcher = open_runtime(app_settings.model_copy(update={"index_kind": "hnsw"}), pipeline)
    try:
        case, added = register_case(matcher, new_case("A"), [CasePhotoUpload(wrong)])
        remove_photo(matcher, case.id, added[0].photo_id)
        assert matcher.index.tombstone_count == 1
        add_photo(matcher, case.id, CasePhotoUpload(right))
        assert matcher.index.faces_of(case.id).size == 1
        assert_found_first(matcher, right, case.id)
    finally:
        matcher.close()


def test_an_erased_case_leaves_no_vector_in_the_copy_a_clean_stop_saves(
    app_settings: Settings, pipeline: FacePipeline
) -> None:
    """HNSW only marks a removed vector: saved as it was, an erased child's descriptor went
    back to disk at every clean stop, and survived every restart."""
    kept_photo, erased_photo = photos(0, 4)
    hnsw = app_settings.model_copy(update={"index_kind": "hnsw"})
    matcher = open_runtime(hnsw, pipeline)
    kept, _ = register_case(matcher, new_case("kept"), [CasePhotoUpload(kept_photo)])
    erased, _ = register_case(matcher, new_case("erased"), [CasePhotoUpload(erased_photo)])
    erased_faces = matcher.index.faces_of(erased.id).tolist()
    erase(matcher, erased.id)
    assert matcher.index.tombstone_count == len(erased_faces) > 0
    matcher.close()

    [saved] = list(hnsw.index_dir.glob("active-cases/*.npz"))
    with np.load(saved) as arrays:
        ids = {name: set(arrays[name].tolist()) for name in ("ids", "owners", "tombstones")}
        vectors = faiss.deserialize_index(arrays["index"]).ntotal
    assert not (ids["ids"] | ids["tombstones"]) & set(erased_faces)
    assert erased.id not in ids["owners"] and vectors == len(ids["ids"]) == 1
    again = open_runtime(hnsw, pipeline)
    try:
        assert again.index.owner_count == 1 and again.index.tombstone_count == 0
    finally:
        again.close()
