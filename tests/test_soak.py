"""Soak: `matcher serve` on loopback under 16 tip apps uploading real face photos at once and 2
investigators reading candidates, for MATCHER_SOAK_SECONDS (20 by default; 60 for the figures
in docs/reliability.md). Zero 5xx, zero lost sightings (every 201 id is readable after), and
the latency percentiles printed. The tip-app rate limit is lifted: this measures throughput,
not the limiter.
"""

from __future__ import annotations

import itertools
import os
import platform
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import numpy as np
import pytest

from matcher.config import Settings
from matcher.store import Role
from tests.api.builders import case_body
from tests.data import Photo, lfw_photos, require_test_data, sample
from tests.live import LiveServer

UPLOADERS = 16
INVESTIGATORS = 2
CASES = 20


@dataclass
class Load:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, dict[int, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    failures: list[str] = field(default_factory=list)  # 5xx and transport errors
    sightings: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def timed(self, kind: str, call: Callable[[], httpx.Response]) -> httpx.Response | None:
        start = time.perf_counter()
        try:
            response = call()
        except httpx.TransportError as error:
            with self.lock:
                self.failures.append(f"{kind}: {type(error).__name__}: {error}")
            return None
        seconds = time.perf_counter() - start
        with self.lock:
            self.latencies[kind].append(seconds)
            self.statuses[kind][response.status_code] += 1
            if response.status_code >= 500:
                self.failures.append(f"{kind}: {response.status_code} {response.text[:300]}")
        return response


def uploader(server: LiveServer, key: str, photos: list[Photo], load: Load) -> None:
    with server.client(key) as client:
        for photo in itertools.cycle(photos):
            if load.stop.is_set():
                return
            data = photo.path.read_bytes()
            answer = load.timed("upload", partial(client.post, "/v1/sightings", files={
                "photo": (photo.path.name, data, "image/jpeg")}))
            if answer is not None and answer.status_code == 201:
                with load.lock:
                    load.sightings.append(answer.json()["id"])


def investigator(server: LiveServer, key: str, load: Load) -> None:
    with server.client(key) as client:
        while not load.stop.is_set():
            listed = load.timed("list", partial(client.get, "/v1/sightings",
                                                params={"limit": 20}))
            rows = listed.json() if listed is not None and listed.status_code == 200 else []
            for row in rows[:5]:
                found = load.timed("candidates", partial(
                    client.get, f"/v1/sightings/{row['id']}/candidates"))
                if found is not None and found.status_code == 200 and found.json():
                    crop = found.json()[0]["sighting_face_crop_url"]
                    load.timed("crop", partial(client.get, crop))
            if not rows:
                time.sleep(0.2)


def percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    p50, p95, p99 = np.percentile(np.asarray(values) * 1000, [50, 95, 99])
    return f"p50 {p50:.0f} / p95 {p95:.0f} / p99 {p99:.0f} ms (n={len(values)})"


def test_soak(settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_test_data()
    seconds = float(os.environ.get("MATCHER_SOAK_SECONDS", "20"))
    photos = lfw_photos()
    cases, uploads = sample(photos, CASES, seed=1), sample(photos, 200, seed=2)
    # The session's converted weights when another test loaded them already.
    server = LiveServer(tmp_path / "data", cache_from=settings.cache_dir,
                        tip_rate_per_minute="1000000", tip_burst="1000000")
    with server:
        server.start()
        manager = server.new_key(Role.CASE_MANAGER, "desk")
        with server.client(manager) as client:
            for i, photo in enumerate(cases):
                case = client.post("/v1/cases", json=case_body(f"Soak {i}")).json()
                added = client.post(f"/v1/cases/{case['id']}/photos", files={
                    "photo": (photo.path.name, photo.path.read_bytes(), "image/jpeg")})
                assert added.status_code == 201, added.text
        tips = [server.new_key(Role.TIP_APP, f"app {i}") for i in range(UPLOADERS)]
        readers = [server.new_key(Role.INVESTIGATOR, f"desk {i}") for i in range(INVESTIGATORS)]
        load = Load()
        threads = [threading.Thread(target=uploader, args=(
            server, tips[i], uploads[i::UPLOADERS], load)) for i in range(UPLOADERS)]
        threads += [threading.Thread(target=investigator, args=(server, key, load))
                    for key in readers]
        start = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        load.stop.set()
        for thread in threads:
            thread.join(timeout=120)
        elapsed = time.monotonic() - start  # the last uploads finish after the stop
        with server.client(readers[0]) as client:
            lost = [sid for sid in load.sightings
                    if client.get(f"/v1/sightings/{sid}").status_code != 200]
        server.stop()
    with capsys.disabled():
        print(f"\nsoak: {seconds:.0f} s, {UPLOADERS} uploaders + {INVESTIGATORS} investigators, "
              f"{os.cpu_count()} cores ({platform.machine()}), "
              f"{len(load.sightings)} sightings = {len(load.sightings) / elapsed:.2f}/s")
        for kind in ("upload", "list", "candidates", "crop"):
            print(f"  {kind:<10} {percentiles(load.latencies[kind])}  "
                  f"statuses {dict(load.statuses[kind])}")
    assert not load.failures, load.failures[:20]
    assert not lost, lost
    assert load.sightings and all(
        status < 500 for kinds in load.statuses.values() for status in kinds)
