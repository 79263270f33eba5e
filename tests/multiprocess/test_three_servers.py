"""Three real `matcher serve` processes on one real PostgreSQL server and one shared data dir
(issue 23): each follows the store's index change log, woken by LISTEN/NOTIFY.

- a case registered through A is found by a sighting uploaded through C within a second;
- a case closed through B gets no candidate from the sightings racing the close on A and C;
- a `matcher purge` run as a separate process leaves every process's indexes equal to the
  store;
- a reindex started through A moves B and C to the new model, with the sightings they took
  while it ran;
- a `kill -9` of one process during a burst loses no acknowledged sighting, and the others
  keep serving (it runs last: the trio is down to two).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from matcher.config import Settings
from matcher.store import Face, Role, Sighting, active_case_face_summary, session_factory
from matcher.store.db import fresh_database
from matcher.store.face_rows import sighting_face_summary
from matcher.store.vectors import count_faces_without_vectors
from matcher.wiring import make_engine
from tests.api.builders import case_body, photo_file
from tests.data import REPO_ROOT, Photo, fgnet_photos, require_test_data
from tests.live import LiveServer

PERSON = "fgnet-005"
FLIP = "dlib-resnet-v1-flip"


@pytest.fixture(scope="module")
def trio(settings: Settings, postgres_admin_url: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_test_data()
    data_dir = tmp_path_factory.mktemp("shared") / "data"
    with fresh_database(postgres_admin_url, "matcher_trio") as url:
        # Uploads faster than a phone's: out of the tip-app rate limit's way.
        shared = {"database_url": url, "tip_rate_per_minute": "60000", "tip_burst": "10000"}
        first = LiveServer(data_dir, cache_from=settings.cache_dir, log_name="a", **shared)
        servers = [first] + [LiveServer(data_dir, admin_key=first.admin, log_name=name,
                                        **shared) for name in ("b", "c")]
        try:
            for server in servers:
                server.start()
            keys = {role: first.new_key(role, role.value) for role in
                    (Role.TIP_APP, Role.INVESTIGATOR, Role.CASE_MANAGER)}
            yield {"servers": servers, "keys": keys, "url": url, "data_dir": data_dir}
        finally:
            for server in servers:
                server.kill()


def _photos() -> list[Photo]:
    return [p for p in fgnet_photos() if p.identity == PERSON]


def _register(server: LiveServer, manager: str, photo: Photo, name: str) -> int:
    with server.client(manager) as client:
        made = client.post("/v1/cases", json=case_body(name))
        assert made.status_code == 201, made.text
        case_id = int(made.json()["id"])
        added = client.post(f"/v1/cases/{case_id}/photos", files=photo_file(photo))
        assert added.status_code == 201, added.text
    return case_id


def _sighting(server: LiveServer, tip: str, photo: Photo) -> int:
    with server.client(tip) as client:
        sent = client.post("/v1/sightings", files=photo_file(photo))
        assert sent.status_code == 201, sent.text
        return int(sent.json()["id"])


def _cases_of(server: LiveServer, investigator: str, sighting: int) -> set[int]:
    with server.client(investigator) as client:
        got = client.get(f"/v1/sightings/{sighting}/candidates")
        assert got.status_code == 200, got.text
        return {int(c["case_id"]) for c in got.json()}


def test_a_case_registered_on_a_is_found_through_c_within_a_second(
        trio: dict[str, Any]) -> None:
    a, _, c = trio["servers"]
    keys = trio["keys"]
    photos = _photos()
    case_id = _register(a, keys[Role.CASE_MANAGER], photos[0], "Ada Trio")
    registered = time.monotonic()
    found_after = None
    for photo in photos[1:6]:
        sent_at = time.monotonic() - registered
        sighting = _sighting(c, keys[Role.TIP_APP], photo)
        if case_id in _cases_of(c, keys[Role.INVESTIGATOR], sighting):
            found_after = sent_at
            break
    assert found_after is not None and found_after <= 1.0, found_after
    health = httpx.get(f"{c.base}/healthz", timeout=5).json()
    assert health["status"] == "ok" and health["index_changes_behind"] == 0


def test_a_case_closed_on_b_gets_no_candidate_from_sightings_racing_on_a_and_c(
        trio: dict[str, Any]) -> None:
    a, b, c = trio["servers"]
    keys = trio["keys"]
    photos = _photos()
    case_id = _register(a, keys[Role.CASE_MANAGER], photos[0], "Bo Trio")
    time.sleep(1.0)  # every process has it (the test above holds the delay to a second)
    sent: list[tuple[float, int]] = []  # (when the upload began, sighting id)
    stop = threading.Event()
    # A new photo each time (the same photo again is the same sighting); any face gets the
    # few active cases among its top-k candidates.
    fresh = iter([p for p in fgnet_photos() if p.identity != PERSON])
    take = threading.Lock()

    def upload(server: LiveServer) -> None:
        while not stop.is_set():
            with take:
                photo = next(fresh)
            began = time.monotonic()
            sent.append((began, _sighting(server, keys[Role.TIP_APP], photo)))

    workers = [threading.Thread(target=upload, args=(server,)) for server in (a, c)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(2.5)
        closing = time.monotonic()
        with b.client(keys[Role.CASE_MANAGER]) as manager:
            closed = manager.patch(f"/v1/cases/{case_id}", json={"status": "found"})
        closed_at = time.monotonic()
        assert closed.status_code == 200, closed.text
        time.sleep(2.0)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
    before = [s for began, s in sent if began < closing - 1.0]  # answered before the close
    after = [s for began, s in sent if began > closed_at]
    assert len(set(after)) == len(after)
    # Before the close the case was proposed (a sighting without a fit face proposes none).
    proposed = [_cases_of(a, keys[Role.INVESTIGATOR], s) for s in before]
    assert [cases for cases in proposed if cases]
    assert all(case_id in cases for cases in proposed if cases)
    late = [s for s in after if case_id in _cases_of(c, keys[Role.INVESTIGATOR], s)]
    assert after and late == [], late


def test_a_purge_beside_the_three_leaves_every_index_equal_to_the_store(
        trio: dict[str, Any]) -> None:
    servers, keys, data_dir = trio["servers"], trio["keys"], trio["data_dir"]
    for server, photo in zip(servers, _photos()[1:4], strict=True):
        _sighting(server, keys[Role.TIP_APP], photo)
    settings = Settings(data_dir=data_dir, database_url=trio["url"])
    done = subprocess.run(
        [sys.executable, "-m", "matcher", "purge", "--older-than-days", "0", "--data-dir",
         str(data_dir)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "MATCHER_THREADS": "1", "MATCHER_DATABASE_URL": trio["url"]})
    assert done.returncode == 0, done.stderr
    engine = make_engine(settings)
    try:
        with session_factory(engine)() as session:
            stored = session.scalar(select(func.count()).select_from(Face).join(Sighting)
                                    .where(Face.fit))
    finally:
        engine.dispose()
    deadline = time.monotonic() + 5
    while True:
        held = [server.metric("matcher_index_sighting_faces") for server in servers]
        if held == [stored] * 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert held == [stored] * 3, (held, stored, dt.datetime.now())


def test_a_reindex_started_on_a_moves_all_three(trio: dict[str, Any]) -> None:
    """While A reindexes to the flip model, B and C take sightings with the old one; at the
    swap both move, embed what they took, and every index equals the store's faces of the new
    model."""
    servers, keys = trio["servers"], trio["keys"]
    a, b, c = servers
    old = httpx.get(f"{a.base}/healthz", timeout=5).json()["model_id"]
    assert old != FLIP
    admin = {"Authorization": f"Bearer {a.admin}"}
    started = httpx.post(f"{a.base}/v1/admin/reindex", json={"embed_flip": True},
                         headers=admin, timeout=30)
    assert started.status_code == 202, started.text
    photos = iter([p for p in fgnet_photos() if p.identity != PERSON][120:])
    taken: list[int] = []
    deadline = time.monotonic() + 300
    while (state := httpx.get(f"{a.base}/v1/admin/reindex", headers=admin,
                              timeout=30).json())["running"]:
        assert time.monotonic() < deadline, state
        for server in (b, c):
            taken.append(_sighting(server, keys[Role.TIP_APP], next(photos)))
    assert state["error"] is None and state["report"]["swapped"], state
    for server in (b, c):  # and right after the swap, before they may have moved
        taken.append(_sighting(server, keys[Role.TIP_APP], next(photos)))
    assert taken
    for server in servers:
        while httpx.get(f"{server.base}/healthz", timeout=5).json()["model_id"] != FLIP:
            assert time.monotonic() < deadline, server.log_path
            time.sleep(0.1)
    engine = make_engine(Settings(data_dir=trio["data_dir"], database_url=trio["url"]))
    try:
        with session_factory(engine)() as session:
            assert count_faces_without_vectors(session, FLIP) == 0
            stored = (active_case_face_summary(session, FLIP).count,
                      sighting_face_summary(session, FLIP).count)
    finally:
        engine.dispose()
    settle = time.monotonic() + 10
    while True:  # the `model` changes of B and C reach the others within their follow round
        held = [(server.metric("matcher_index_case_faces"),
                 server.metric("matcher_index_sighting_faces")) for server in servers]
        if held == [stored] * 3 or time.monotonic() > settle:
            break
        time.sleep(0.1)
    assert held == [stored] * 3, (held, stored)
    with c.client(keys[Role.INVESTIGATOR]) as desk:  # C now matches with the new model
        sighting = _sighting(c, keys[Role.TIP_APP], next(photos))
        got = desk.get(f"/v1/sightings/{sighting}/candidates").json()
    assert got and {candidate["model_id"] for candidate in got} == {FLIP}


def test_a_process_killed_in_a_burst_loses_nothing_and_the_others_serve_on(
        trio: dict[str, Any]) -> None:
    servers, keys = trio["servers"], trio["keys"]
    victim, survivors = servers[1], [servers[0], servers[2]]
    acknowledged: list[int] = []
    failed: list[str] = []
    photos = iter([p for p in fgnet_photos() if p.identity != PERSON][200:])
    take = threading.Lock()

    def burst(server: LiveServer, count: int) -> None:
        with server.client(keys[Role.TIP_APP], timeout=30) as client:
            for _ in range(count):
                with take:
                    photo = next(photos)
                try:
                    sent = client.post("/v1/sightings", files=photo_file(photo))
                except httpx.TransportError as error:  # the killed one's, in flight
                    failed.append(type(error).__name__)
                    continue
                if sent.status_code == 201:
                    acknowledged.append(int(sent.json()["id"]))
                else:
                    failed.append(str(sent.status_code))

    workers = [threading.Thread(target=burst, args=(server, 12)) for server in servers]
    for worker in workers:
        worker.start()
    time.sleep(1.5)
    victim.kill()
    for worker in workers:
        worker.join(timeout=300)
    assert len(acknowledged) >= 20, (len(acknowledged), failed)
    with survivors[1].client(keys[Role.INVESTIGATOR]) as desk:
        for sighting in acknowledged:  # every acknowledged one is in the store, whole
            got = desk.get(f"/v1/sightings/{sighting}")
            assert got.status_code == 200, (sighting, got.text)
    for server in survivors:  # and the others still take sightings
        assert _sighting(server, keys[Role.TIP_APP], next(photos)) > 0
        assert httpx.get(f"{server.base}/healthz", timeout=5).json()["status"] == "ok"
