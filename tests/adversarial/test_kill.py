"""Crash consistency: the shared server SIGKILLed while tip apps upload real face photos and a
case manager adds cases, and again half-way through a live reindex; each time restarted on the
same data dir.

What must hold after a restart, beyond the checks after every attack (every acknowledged write
there, the indexes equal to the store):
- a sighting committed whose answer the kill cut off is there whole, with its photo;
- every fit face of a sighting acknowledged while cases were active has candidates;
- every photo row has its file, and the only files no row references are those of requests
  the kill cut short: a photo is written (temp file, fsync, rename) before its rows commit, so
  each request in flight may leave one, swept by `remove_orphans` after an hour;
- a reindex killed half-way leaves the old model serving, and the next one resumes from the
  vectors already written and swaps, while uploads go on beside it.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
from sqlalchemy import select

from matcher.store import CasePhoto, Sighting, orphan_files
from tests.adversarial.harness import Target, cast, model_id, store_session
from tests.api.builders import case_body
from tests.data import Photo

UPLOADERS = 4
ACKED_BEFORE_KILL = 6
SIGHTED = range(5, 11)  # people of the cast whose photos the tip apps send
REGISTERED = range(11, 14)  # people registered as cases during the uploads
BESIDE_REINDEX = range(14, 16)  # people sighted while the resumed reindex runs
FLIP = {"embed_flip": True}  # the reindex's target: the same networks, flipped chips added


@dataclass
class Traffic:
    """What the clients saw: requests the kill cut off, and answers that are not 201."""

    cut_off: int = 0
    errors: list[str] = field(default_factory=list)
    acknowledged: list[float] = field(default_factory=list)  # when each 201 came back
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def send(self, request: Callable[[], httpx.Response]) -> httpx.Response | None:
        """The answer to `request`; None when it was cut off or not a 201."""
        try:
            answer = request()
        except httpx.TransportError:
            with self.lock:
                self.cut_off += 1
            return None
        with self.lock:
            if answer.status_code != 201:
                self.errors.append(f"{answer.status_code}: {answer.text[:200]}")
                return None
            self.acknowledged.append(time.monotonic())
        return answer


def _sight(target: Target, traffic: Traffic, photos: list[Photo]) -> None:
    with target.client(target.tip) as app:
        for photo in itertools.cycle(photos):
            if traffic.stop.is_set() or not traffic.send(partial(target.upload, app, photo)):
                return


def _register(target: Target, traffic: Traffic, people: list[list[Photo]]) -> None:
    with target.client(target.manager) as desk:
        for i, photos in enumerate(people):
            made = traffic.send(partial(desk.post, "/v1/cases", json=case_body(f"kill {i}")))
            if traffic.stop.is_set() or made is None or not traffic.send(
                    partial(target.add_photo, desk, made.json()["id"], photos[0])):
                return


def _listed(target: Target) -> set[int]:
    with target.client(target.investigator) as desk:
        return {row["id"] for row in desk.get("/v1/sightings", params={"limit": 500}).json()}


def _orphans(target: Target) -> int:
    """Photo files no row references; every row's file must exist."""
    data_dir = target.server.data_dir
    with store_session(target) as session:
        paths = [*session.scalars(select(Sighting.path)), *session.scalars(select(CasePhoto.path))]
        missing = [path for path in paths if not (data_dir / path).is_file()]
        assert not missing, missing
        return len(orphan_files(session, data_dir, min_age_s=0))


def test_kill_during_uploads(target: Target) -> None:
    people = cast(max(REGISTERED) + 1)
    ledger = target.ledger
    known, orphans_before = _listed(target), _orphans(target)
    photos_before = set(ledger.case_photos)
    with target.attack("kill -9 during uploads") as run:
        traffic = Traffic()
        sighted = [photo for person in SIGHTED for photo in people[person][1:]]
        threads = [threading.Thread(target=_sight, args=(target, traffic, sighted[i::UPLOADERS]))
                   for i in range(UPLOADERS)]
        threads.append(threading.Thread(target=_register, args=(
            target, traffic, [people[person] for person in REGISTERED])))
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 90
        while (len(set(ledger.sightings) - known) < ACKED_BEFORE_KILL
               or not set(ledger.case_photos) - photos_before):
            assert time.monotonic() < deadline and not traffic.errors, traffic.errors
            time.sleep(0.05)
        time.sleep(random.uniform(0, 0.3))  # anywhere in the next uploads' work
        target.kill()
        traffic.stop.set()
        for thread in threads:
            thread.join(timeout=60)
        run.sent(traffic.cut_off)
        target.restart()
        assert not traffic.errors, traffic.errors
        acked = set(ledger.sightings) - known
        added = set(ledger.case_photos) - photos_before
        unanswered = _listed(target) - known - acked
        with target.client(target.investigator) as desk:
            for sighting in acked | unanswered:
                _whole(desk, sighting, with_candidates=sighting in acked)
        orphans = _orphans(target) - orphans_before
        assert orphans <= traffic.cut_off
        run.holds(f"{len(acked)} sightings and {len(added)} case photos acknowledged, "
                  f"{len(unanswered)} committed unanswered, {traffic.cut_off} cut off: all "
                  f"whole after the restart, orphan files: {orphans}")


def _whole(desk: httpx.Client, sighting: int, with_candidates: bool) -> None:
    """The sighting, its photo and, for each fit face, candidates ranked from 1."""
    stored = desk.get(f"/v1/sightings/{sighting}")
    assert stored.status_code == 200, stored.text
    assert desk.get(f"/v1/sightings/{sighting}/photo").status_code == 200
    if not with_candidates:
        return
    candidates = desk.get(f"/v1/sightings/{sighting}/candidates").json()
    for face in stored.json()["faces"]:
        ranks = [c["rank"] for c in candidates if c["sighting_face_id"] == face["id"]]
        assert (min(ranks) == 1) if face["fit"] else not ranks, (sighting, face, ranks)


class Reindex:
    """The live reindex to FLIP, started and watched through the admin API."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.last_running = 0.0  # when a poll last found it running
        with target.client(target.server.admin) as admin:
            started = admin.post("/v1/admin/reindex", json=FLIP)
        assert started.status_code == 202, started.text

    def until(self, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Polls the job's state until `done` holds for it."""
        deadline = time.monotonic() + 300
        with self.target.client(self.target.server.admin) as admin:
            while not done(state := admin.get("/v1/admin/reindex").json()):
                assert time.monotonic() < deadline and state["error"] is None, state
                self.last_running = time.monotonic()
                time.sleep(0.02)
        return state


def _embedding(state: dict[str, Any]) -> bool:
    return bool(state["done"] > 0)


def test_kill_during_a_reindex_then_a_reindex_beside_uploads(target: Target) -> None:
    before = model_id(target)
    with target.attack("kill -9 during a live reindex") as run:
        killed = Reindex(target).until(_embedding)
        target.kill()
        target.restart()
        run.sent(1)
        assert killed["done"] < killed["total"], "the kill did not land half-way"
        assert model_id(target) == before
        run.holds(f"killed at {killed['done']} of {killed['total']} faces: the old model "
                  "serves, whole")
    people = cast(max(BESIDE_REINDEX) + 1)
    with target.attack("live reindex beside uploads") as run:
        job = Reindex(target)
        job.until(_embedding)  # its count is taken: the uploads come on top of it
        traffic = Traffic()
        uploads = threading.Thread(target=_sight_once, args=(
            target, traffic, [photo for person in BESIDE_REINDEX for photo in people[person]]))
        uploads.start()
        state = job.until(lambda state: not state["running"])
        uploads.join()
        run.sent(2)
        report = state["report"]
        assert state["error"] is None and report["swapped"], state
        assert report["faces_to_embed"] < killed["total"], (report, killed)  # resumed
        assert traffic.errors == [] and traffic.cut_off == 0, traffic.errors
        beside = sum(at < job.last_running for at in traffic.acknowledged)
        assert beside >= 1, "no upload was answered while the reindex ran"
        assert model_id(target) == report["to_model"] != before
        # Every face uploaded during the job has a vector of the model it swapped to.
        assert target.server.metric("matcher_faces_without_vectors") == 0
        run.holds(f"resumed with {report['faces_to_embed']} of {killed['total']} faces left; "
                  f"{beside} uploads answered while it ran; swapped, no face without a vector "
                  "of the new model")


def _sight_once(target: Target, traffic: Traffic, photos: list[Photo]) -> None:
    with target.client(target.tip) as app:
        for photo in photos:
            traffic.send(partial(target.upload, app, photo))
