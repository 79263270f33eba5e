"""Crash consistency: `matcher serve` SIGKILLed while tip apps upload real face photos and a
case manager adds case photos, then restarted on the same data dir.

What must hold after the restart:
- every upload answered 201 is there, with its faces and their candidates, and its photo;
- every sighting and case photo row has its photo file (none half-written);
- the active case index holds exactly the store's active case faces;
- the only photo files no row references are those of transactions the kill cut short: a
  photo is written (temp file, fsync, rename) before its rows commit, so each request in flight
  at the kill may leave one file, named by its content and swept by `remove_orphans` after an
  hour. More orphans than requests in flight would be a leak; a missing file would be a loss.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import select

from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.store import (
    CasePhoto,
    Role,
    Sighting,
    active_case_face_summary,
    make_engine,
    orphan_files,
    session_factory,
)
from tests.api.builders import case_body
from tests.data import Photo, lfw_photos, require_test_data
from tests.live import LiveServer

UPLOADERS = 4
ACKED_BEFORE_KILL = 10


@dataclass
class Traffic:
    """What the clients saw: answered uploads, and requests cut off by the kill."""

    sightings: dict[int, list[dict[str, object]]] = field(default_factory=dict)  # id -> faces
    case_photos: list[int] = field(default_factory=list)
    cut_off: int = 0  # requests that got no answer (in flight at the kill)
    errors: list[str] = field(default_factory=list)  # answers that are not 201
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)


def people(count: int) -> list[list[Photo]]:
    by_person: dict[str, list[Photo]] = defaultdict(list)
    for photo in lfw_photos():
        by_person[photo.identity].append(photo)
    return [photos for _, photos in sorted(by_person.items()) if len(photos) >= 4][:count]


def upload(server: LiveServer, key: str, photos: list[Photo], traffic: Traffic) -> None:
    with server.client(key) as client:
        for photo in itertools.cycle(photos):
            if traffic.stop.is_set():
                return
            try:
                answer = client.post("/v1/sightings", files={
                    "photo": (photo.path.name, photo.path.read_bytes(), "image/jpeg")})
            except httpx.TransportError:
                with traffic.lock:
                    traffic.cut_off += 1
                return
            with traffic.lock:
                if answer.status_code == 201:
                    traffic.sightings[answer.json()["id"]] = answer.json()["faces"]
                else:
                    traffic.errors.append(f"sighting {answer.status_code}: {answer.text[:200]}")


def add_cases(server: LiveServer, key: str, persons: list[list[Photo]], traffic: Traffic) -> None:
    with server.client(key) as client:
        for i, photos in enumerate(persons):
            if traffic.stop.is_set():
                return
            try:
                case = client.post("/v1/cases", json=case_body(f"P{i}"))
                if case.status_code != 201:
                    traffic.errors.append(f"case {case.status_code}: {case.text[:200]}")
                    return
                added = client.post(f"/v1/cases/{case.json()['id']}/photos", files={
                    "photo": (photos[0].path.name, photos[0].path.read_bytes(), "image/jpeg")})
            except httpx.TransportError:
                with traffic.lock:
                    traffic.cut_off += 1
                return
            with traffic.lock:
                if added.status_code == 201:
                    traffic.case_photos.append(added.json()["photo_id"])
                else:
                    traffic.errors.append(f"photo {added.status_code}: {added.text[:200]}")


def unlimited_server(settings: Settings, tmp_path: Path, **extra: str) -> LiveServer:
    """A live server over tmp_path whose tip-app rate limit never gets in the way."""
    return LiveServer(tmp_path / "data", cache_from=settings.cache_dir,
                      tip_rate_per_minute="1000000", tip_burst="1000000", **extra)


def role_keys(server: LiveServer) -> tuple[str, str, str]:
    """Case manager, tip app and investigator keys."""
    return (server.new_key(Role.CASE_MANAGER, "desk"), server.new_key(Role.TIP_APP, "app"),
            server.new_key(Role.INVESTIGATOR, "inv"))


def test_acknowledged_uploads_survive_a_sigkill(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    require_test_data()
    persons = people(12)
    server = unlimited_server(settings, tmp_path)
    with server:
        # 1. Three cases, then a clean stop: the index is saved for the next start.
        server.start()
        manager, tip, investigator = role_keys(server)
        traffic = Traffic()
        add_cases(server, manager, persons[:3], traffic)
        assert len(traffic.case_photos) == 3 and not traffic.errors, traffic.errors
        server.stop()

        # 2. Uploads from several apps and new cases at once, and a SIGKILL in the middle.
        server.start()
        traffic = Traffic()
        sighting_photos = [photo for photos in persons for photo in photos[1:]]
        threads = [threading.Thread(target=upload, args=(
            server, tip, sighting_photos[i::UPLOADERS], traffic)) for i in range(UPLOADERS)]
        threads.append(threading.Thread(target=add_cases, args=(
            server, manager, persons[3:], traffic)))
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while (len(traffic.sightings) < ACKED_BEFORE_KILL or not traffic.case_photos) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(random.uniform(0, 0.3))  # anywhere in the next uploads' work
        server.kill()
        traffic.stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert not traffic.errors, traffic.errors
        assert len(traffic.sightings) >= ACKED_BEFORE_KILL, server.log_tail()

        # 3. Restart: what was acknowledged is all there.
        server.start()
        with server.client(investigator) as client:
            for sighting_id, faces in traffic.sightings.items():
                check_sighting(client, sighting_id, faces)
            listed = client.get("/v1/sightings", params={"limit": 500}).json()
            for row in listed:  # committed but unanswered ones too: whole, never half
                if row["id"] not in traffic.sightings:
                    check_sighting(client, row["id"], None)
            assert set(traffic.sightings) <= {row["id"] for row in listed}
        indexed = server.metric("matcher_index_case_faces")
        server.stop()

    # 4. The store, read directly: files, orphans, and the index against the store.
    engine = make_engine(Settings(data_dir=server.data_dir))
    try:
        with session_factory(engine)() as session:
            paths = [*session.scalars(select(Sighting.path)),
                     *session.scalars(select(CasePhoto.path))]
            missing = [p for p in paths if not (server.data_dir / p).is_file()]
            assert not missing, missing
            orphans = orphan_files(session, server.data_dir, min_age_s=0)
            active = active_case_face_summary(session, pipeline.model_id)
    finally:
        engine.dispose()
    print(f"\ncrash: {len(traffic.sightings)} sightings and {len(traffic.case_photos)} case "
          f"photos acknowledged, {len(listed) - len(traffic.sightings)} committed unanswered, "
          f"{traffic.cut_off} requests cut off, {len(orphans)} orphan files")
    assert len(orphans) <= traffic.cut_off, orphans
    assert indexed == active.count, (indexed, active)


def check_sighting(client: httpx.Client, sighting_id: int,
                   faces: list[dict[str, object]] | None) -> None:
    """The sighting, its faces as answered, its photo, and candidates for each fit face (every
    face is searched against at least the three first cases)."""
    stored = client.get(f"/v1/sightings/{sighting_id}")
    assert stored.status_code == 200, stored.text
    rows = stored.json()["faces"]
    if faces is not None:
        assert [face["fit"] for face in faces] == [row["fit"] for row in rows]
    assert client.get(f"/v1/sightings/{sighting_id}/photo").status_code == 200
    candidates = client.get(f"/v1/sightings/{sighting_id}/candidates").json()
    for row in rows:
        ranks = [c["rank"] for c in candidates if c["sighting_face_id"] == row["id"]]
        if row["fit"]:
            # Retro-matching (a case photo added later) ranks its row among the existing ones
            # without renumbering them, so a rank may repeat; the first is always 1.
            assert len(ranks) >= 3 and min(ranks) == 1, ranks
        else:
            assert ranks == []



def test_a_server_killed_mid_reindex_restarts_on_the_old_model_and_resumes(
    settings: Settings, tmp_path: Path
) -> None:
    """SIGKILL while a live reindex writes vectors: the restart serves the old model whole
    (every sighting and its candidates; the index agrees with the store), and the next
    reindex resumes from the vectors already written, then swaps."""
    require_test_data()
    server = unlimited_server(settings, tmp_path, detect_batch_size="1", workers="1")
    with server:
        server.start()
        manager, tip, investigator = role_keys(server)
        traffic = Traffic()
        persons = people(6)
        add_cases(server, manager, persons, traffic)
        assert not traffic.errors and len(traffic.case_photos) == 6, traffic.errors
        sightings: dict[int, list[dict[str, object]]] = {}
        with server.client(tip) as client:
            for photo in [photo for person in persons for photo in person[1:]][:12]:
                sent = client.post("/v1/sightings", files={
                    "photo": (photo.path.name, photo.path.read_bytes(), "image/jpeg")})
                assert sent.status_code == 201, sent.text
                sightings[sent.json()["id"]] = sent.json()["faces"]
        with server.client(server.admin) as admin:
            before = httpx.get(f"{server.base}/healthz").json()["model_id"]
            assert admin.post("/v1/admin/reindex", json={"embed_flip": True}).status_code == 202
            deadline = time.monotonic() + 60
            while (state := admin.get("/v1/admin/reindex").json())["done"] == 0:
                assert state["running"] and time.monotonic() < deadline, state
                time.sleep(0.02)
        server.kill()
        total = state["total"]
        assert state["done"] < total, "the kill did not land half-way"

        server.start()
        assert httpx.get(f"{server.base}/healthz").json()["model_id"] == before
        with server.client(investigator) as client:
            for sighting_id, faces in sightings.items():
                check_sighting(client, sighting_id, faces)
        assert server.metric("matcher_index_case_faces") == 6
        with server.client(server.admin) as admin:
            assert admin.post("/v1/admin/reindex", json={"embed_flip": True}).status_code == 202
            while (state := admin.get("/v1/admin/reindex").json())["running"]:
                time.sleep(0.1)
        report = state["report"]
        assert state["error"] is None and report["swapped"], state
        assert report["faces_to_embed"] < total  # resumed: some were written before the kill
        assert httpx.get(f"{server.base}/healthz").json()["model_id"] == report["to_model"]
        assert server.metric("matcher_index_case_faces") == 6
        server.stop()
