"""Two runtimes on one store, as two serving processes are: each follows the store's index
change log (matcher/service/index_follow.py), so what one changes the other's indexes hold
after its follower's next round. On SQLite and on PostgreSQL.

tests/multiprocess/ runs the same with three real `matcher serve` processes.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import (
    CasePhotoUpload,
    Runtime,
    ingest_sighting,
    open_runtime,
    register_case,
    remove_photo,
    sighting_candidates,
    update_case,
)
from matcher.service.index_follow import IndexFollower
from matcher.service.retention import purge_sightings
from matcher.service.retro import index_sighting
from matcher.store import NewCase, NewSighting, Sighting, session_scope
from matcher.store.face_rows import one_sighting_face_rows
from matcher.store.index_log import forget_changes, latest_change
from matcher.store.models import utcnow
from tests.data import lfw_photos, require_test_data


def _case(name: str) -> NewCase:
    return NewCase(category="child", name=name, missing_since=dt.date(2022, 3, 1),
                   age_when_missing=9)


def _held(runtime: Runtime, owner: int, sightings: bool = False) -> int:
    index = runtime.sighting_index if sightings else runtime.index
    with index.read_state() as state:
        return int((state.owners.owner_of == owner).sum())


def test_a_case_changed_by_one_process_is_matched_as_changed_by_the_other(
    matcher: Runtime, other: Runtime
) -> None:
    require_test_data()
    follower = IndexFollower(other)
    people = lfw_photos()
    photo, again = people[0].path.read_bytes(), people[1].path.read_bytes()
    case, added = register_case(matcher, _case("Ada"), [CasePhotoUpload(photo)])
    assert _held(other, case.id) == 0  # not yet: the other has not read the log
    assert follower.catch_up() >= 1
    faces = _held(matcher, case.id)
    assert faces >= 1 and _held(other, case.id) == faces
    assert follower.catch_up() == 0  # nothing more

    # A sighting sent to the other process finds the case the first one registered.
    seen = ingest_sighting(other, photo, NewSighting(app="tips"))
    assert {c.case_id for c in sighting_candidates(other, seen.sighting_id)} == {case.id}
    assert IndexFollower(matcher).catch_up() >= 1
    assert _held(matcher, seen.sighting_id, sightings=True) >= 1  # its retro-matching sees it

    # Closed, reopened, a photo removed: the other follows each, whatever it held before.
    update_case(matcher, case.id, status="found")
    follower.catch_up()
    assert _held(other, case.id) == 0
    update_case(matcher, case.id, status="active")
    follower.catch_up()
    assert _held(other, case.id) == faces
    second = register_case(matcher, _case("Bo"), [CasePhotoUpload(again)])[0]
    remove_photo(matcher, case.id, added[0].photo_id)
    follower.catch_up()
    assert _held(other, case.id) == 0 and _held(other, second.id) == _held(matcher, second.id)


def test_purged_sightings_leave_every_process_and_a_late_one_rebuilds(
    matcher: Runtime, other: Runtime
) -> None:
    require_test_data()
    follower = IndexFollower(other)
    photo = lfw_photos()[0].path.read_bytes()
    seen = ingest_sighting(matcher, photo, NewSighting(app="tips"))
    follower.catch_up()
    assert _held(other, seen.sighting_id, sightings=True) >= 1
    with session_scope(matcher.sessions) as session:  # uploaded long ago: the purge takes it
        session.get(Sighting, seen.sighting_id).uploaded_at = utcnow() - dt.timedelta(days=9)
    assert purge_sightings(matcher, older_than_days=1).sightings == 1
    follower.catch_up()
    assert _held(other, seen.sighting_id, sightings=True) == 0

    # A process that fell behind what the log keeps reads its indexes from the store again.
    case = register_case(matcher, _case("Cy"), [CasePhotoUpload(photo)])[0]
    with session_scope(matcher.sessions) as session:
        newest = latest_change(session)
        assert forget_changes(session, utcnow() + dt.timedelta(seconds=1)) >= 1
    assert _held(other, case.id) == 0
    follower.catch_up()
    assert _held(other, case.id) == _held(matcher, case.id) >= 1
    assert other.index_seq == newest and follower.status().behind == 0


def test_the_server_follows_in_its_own_thread(settings: Settings, pipeline: FacePipeline,
                                              tmp_path: Path) -> None:
    """The thread's rounds, not a test's call: another runtime's case becomes searchable."""
    require_test_data()
    shared = settings.model_copy(update={"data_dir": tmp_path, "index_follow_s": 0.05})
    first, second = open_runtime(shared, pipeline), open_runtime(shared, pipeline)
    follower = IndexFollower(second)
    follower.start()
    try:
        case = register_case(first, _case("Di"),
                             [CasePhotoUpload(lfw_photos()[0].path.read_bytes())])[0]
        deadline = time.monotonic() + 5
        while _held(second, case.id) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _held(second, case.id) == _held(first, case.id) >= 1
    finally:
        follower.stop()
        first.close()
        second.close()


def test_an_upload_indexing_its_faces_after_its_own_follower_did_is_harmless(
    matcher: Runtime
) -> None:
    """The follower may apply a process's own change before the upload's thread adds the
    faces itself (the soak run hit it: a 500 "the face index refused the change")."""
    require_test_data()
    seen = ingest_sighting(matcher, lfw_photos()[0].path.read_bytes(), NewSighting(app="tips"))
    held = _held(matcher, seen.sighting_id, sightings=True)
    assert held >= 1
    IndexFollower(matcher).catch_up()
    with matcher.sessions() as session:
        [(ids, _, vectors)] = list(one_sighting_face_rows(session, seen.sighting_id,
                                                          matcher.model_id))
    index_sighting(matcher, seen.sighting_id, ids.tolist(), vectors)  # once more: late
    assert _held(matcher, seen.sighting_id, sightings=True) == held
