"""Sighting uploads against a live server, one at a time and from concurrent clients, and the
check afterwards that every acknowledged sighting was stored with its candidates."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from matcher.bench.cpu import CpuMeter, cpu_figures
from matcher.bench.phone import PhoneJpeg
from matcher.bench.server import auth

LAT = 51.5072  # sent with every sighting, checked in the store


@dataclass(frozen=True)
class Upload:
    """One upload as the client saw it, and whose case the photo's person is."""

    started: float
    seconds: float
    status: int
    sighting_id: int | None
    case_id: int  # the case of the person in the photo


@dataclass
class Uploader:
    """Sends sighting photos; every upload gets pixels no other upload had."""

    urls: list[str]  # the serving processes: the concurrent clients take them in turn
    tip: str
    photos: list[tuple[PhoneJpeg, int]]  # photo, its person's case
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, client: httpx.Client, photo: tuple[PhoneJpeg, int] | None = None) -> Upload:
        with self.lock:
            number = next(self.numbers)
        jpeg, case_id = photo or self.photos[number % len(self.photos)]
        form = {"lat": str(LAT), "lon": "-0.1276", "taken_at": "2026-11-27T14:03:11Z",
                "reporter_contact": "+44 20 7946 0000"}
        files = {"photo": ("IMG_0001.JPG", jpeg.variant(number), "image/jpeg")}
        start = time.perf_counter()
        answer = client.post("/v1/sightings", headers=auth(self.tip), data=form, files=files)
        seconds = time.perf_counter() - start
        sighting = int(answer.json()["id"]) if answer.status_code == 201 else None
        return Upload(start, seconds, answer.status_code, sighting, case_id)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def sequential(
    uploader: Uploader, count: int, meter: CpuMeter
) -> tuple[dict[str, float], list[Upload]]:
    with httpx.Client(base_url=uploader.urls[0], timeout=120) as client:
        meter.start()
        uploads = [uploader.send(client) for _ in range(count)]
        cpu = cpu_figures(meter.stop(), count)
    ms = [u.seconds * 1000 for u in uploads if u.status == 201]
    return {"uploads": count, "sightings_per_s": len(ms) / (sum(ms) / 1000),
            "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
            "non_201": sum(u.status != 201 for u in uploads), **cpu}, uploads


def concurrent(
    uploader: Uploader, clients: int, duration_s: float, warmup_s: float, meter: CpuMeter
) -> tuple[dict[str, float], list[Upload]]:
    """`clients` threads upload back to back for warmup + duration seconds."""
    uploads: list[Upload] = []
    done = threading.Lock()
    t0 = time.perf_counter()
    measure_from, stop_at = t0 + warmup_s, t0 + warmup_s + duration_s

    def client_loop(url: str) -> None:
        with httpx.Client(base_url=url, timeout=300) as client:
            while time.perf_counter() < stop_at:
                upload = uploader.send(client)
                with done:
                    uploads.append(upload)

    threads = [threading.Thread(target=client_loop,
                                args=(uploader.urls[i % len(uploader.urls)],))
               for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, measure_from - time.perf_counter()))
    meter.start()
    time.sleep(max(0.0, stop_at - time.perf_counter()))
    use = meter.stop()
    for thread in threads:
        thread.join()
    window = [u for u in uploads
              if u.started >= measure_from and u.started + u.seconds <= stop_at]
    ms = [u.seconds * 1000 for u in window if u.status == 201]
    finished = [u for u in uploads if measure_from <= u.started + u.seconds <= stop_at]
    cpu = cpu_figures(use, len(finished))
    return {"clients": clients, "duration_s": duration_s, "uploads": len(uploads),
            "sightings_per_s": sum(u.status == 201 for u in finished) / duration_s,
            "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
            "non_201": sum(u.status != 201 for u in uploads), **cpu}, uploads


def verify(url: str, investigator: str, uploads: list[Upload], top_k: int) -> dict[str, Any]:
    """Every acknowledged sighting, read back: its face and its candidates are stored."""
    problems: list[str] = []
    first = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        for upload in uploads:
            if upload.sighting_id is None:
                continue
            sid = upload.sighting_id
            sighting = client.get(f"/v1/sightings/{sid}", headers=auth(investigator))
            candidates = client.get(f"/v1/sightings/{sid}/candidates", headers=auth(investigator))
            if sighting.status_code != 200 or candidates.status_code != 200:
                problems.append(f"sighting {sid}: {sighting.status_code}/"
                                f"{candidates.status_code}")
                continue
            stored, rows = sighting.json(), candidates.json()
            faces = stored["faces"]
            fit = [face for face in faces if face["fit"]]
            if len(faces) != 1 or len(rows) != top_k * len(fit) or stored["lat"] != LAT:
                problems.append(f"sighting {sid}: {len(faces)} faces, {len(rows)} candidates, "
                                f"lat {stored['lat']}")
            ranked = sorted(rows, key=lambda r: r["rank"])
            first += bool(ranked) and ranked[0]["case_id"] == upload.case_id
    acknowledged = sum(u.sighting_id is not None for u in uploads)
    return {"acknowledged": acknowledged, "problems": problems,
            "planted_first": first / acknowledged if acknowledged else float("nan")}
