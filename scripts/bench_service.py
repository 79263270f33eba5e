"""End-to-end benchmark of the service: sighting upload -> candidates stored, on a live server.

    .venv/bin/python scripts/bench_service.py [--faces 100000] [--clients 8] [--duration 30]
        [--sequential 40] [--repeats 3] [--json]
    .venv/bin/python scripts/bench_service.py --stages [--repeats 15]

1. A throwaway data dir whose store holds --faces synthetic active case faces (cases of 1-5
   photos of one face each; descriptors from matcher.bench.synthetic, fitted to real
   descriptors of ../shared/data from the serving model) bulk-inserted with SQLAlchemy core,
   so the server starts with the index kind of that size; then --people real cases
   registered through the API with an LFW-dev photo each.
2. `matcher serve` in a subprocess (MATCHER_ADMIN_KEY set; other MATCHER_* settings come from
   this environment), /healthz awaited, keys created through POST /v1/keys.
3. Sightings: 12 MP (4032x3024) JPEGs like a phone's (quality 92, 4:2:0, EXIF with camera model
   and GPS): another LFW-dev photo of a case's person, upscaled 3x, on a face-free textured
   scene with sensor grain (about 3.4 MB). No two uploads decode to the same pixels, and the
   client never re-encodes: each photo is encoded twice (plain, and with a mark in every 16-px
   row) with a restart marker after every row, and upload n takes row r from the marked
   encoding when bit r of n is set.
4. (a) --sequential uploads one at a time: p50/p99 latency; (b) --clients concurrent clients
   for --duration seconds: sustained sightings/s (201s completed after --warmup s), p50/p99 and
   the count of answers other than 201. --repeats runs of both on the same server; medians.
5. Then every acknowledged sighting is read back through the investigator API: it must exist
   with its face, and each fit face must have its top-k candidates; the store's sighting count
   must equal the acknowledged count. "planted first" = the case of the person in the photo
   ranked first.

--stages times the same photos in this process, one at a time, stage by stage (decode, detect
and embed, re-encode, fsynced photo write) with the default settings.
Needs the dev extras (httpx) and the research photos (MATCHER_TEST_DATA or ../shared/data).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import matcher  # noqa: F401  sets OMP_WAIT_POLICY before torch loads libgomp

# isort: split
import httpx
import numpy as np
from PIL import Image as PILImage
from PIL import features
from sqlalchemy import insert

from matcher.bench import synthetic
from matcher.bench.machine import describe_machine
from matcher.config import Settings
from matcher.eval.manifest import research_data_dir
from matcher.store import make_engine, migrate
from matcher.store.models import Case, CasePhoto, CaseStatus, Category, Face, FaceVector, Sex
from matcher.store.photos import photo_path

REPO = Path(__file__).resolve().parent.parent
FULL_SIZE = (4032, 3024)
FACE_SCALE = 3  # LFW photos are 250 px: the face comes out about 330 px wide
JPEG_QUALITY = 92
LAT = 51.5072  # sent with every sighting, checked in the store
MCU = 16  # rows per restart interval at 4:2:0
_RST = re.compile(rb"\xff[\xd0-\xd7]")


# --- sighting photos -------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    identity: str
    case_photo: Path
    sighting_photo: Path


@dataclass(frozen=True)
class PhoneJpeg:
    """A phone JPEG whose uploads all differ in pixels, spliced from two encodings."""

    person: Person
    head: bytes  # markers up to the start of the entropy-coded data (same for both)
    plain: tuple[bytes, ...]  # entropy-coded data per restart interval (one MCU row each)
    marked: tuple[bytes, ...]

    def variant(self, number: int) -> bytes:
        rows = (m if (number >> i) & 1 else p
                for i, (p, m) in enumerate(zip(self.plain, self.marked, strict=True)))
        return b"".join((self.head, *rows, b"\xff\xd9"))


def lfw_people(data: Path) -> list[Person]:
    """LFW-dev people with 2+ photos, spread over the manifest."""
    by_identity: dict[str, list[Path]] = {}
    with (data / "lfw-dev" / "manifest.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_identity.setdefault(row["identity"], []).append(data / "lfw-dev" / row["path"])
    people = [Person(k, v[0], v[-1]) for k, v in by_identity.items() if len(v) >= 2]
    step = max(1, len(people) // 64)
    return people[::step] + [p for i, p in enumerate(people) if i % step]


def texture(rng: np.random.Generator, size: tuple[int, int], grain: float = 6.0) -> np.ndarray:
    """A face-free scene: coloured noise at several scales (shapes, edges) plus sensor grain."""
    width, height = size
    quarter = (width // 4, height // 4)
    total = np.zeros((quarter[1], quarter[0], 3), np.float32)
    for cells, weight in ((4, 70.0), (16, 45.0), (64, 30.0), (256, 20.0), (quarter[0], 12.0)):
        noise = rng.random((max(1, cells * height // width), cells, 3), dtype=np.float32)
        for c in range(3):
            plane = PILImage.fromarray(noise[:, :, c], mode="F")
            total[:, :, c] += (np.asarray(plane.resize(quarter, PILImage.Resampling.BICUBIC))
                               - 0.5) * weight
    smooth = PILImage.fromarray(np.clip(total + 128.0, 0, 255).astype(np.uint8))
    full = np.asarray(smooth.resize(size, PILImage.Resampling.BICUBIC), dtype=np.float32)
    full = full + rng.standard_normal(full.shape, dtype=np.float32) * np.float32(grain)
    return np.clip(full, 0, 255).astype(np.uint8)


def phone_exif(orientation: int) -> PILImage.Exif:
    exif = PILImage.Exif()
    exif[0x010F] = "Phonemaker"  # Make
    exif[0x0110] = "Phone X"  # Model
    exif[0x0112] = orientation
    exif[0x0132] = "2026:11:27 14:03:11"  # DateTime
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 26.0), 3: "W", 4: (0.0, 7.0, 39.0)}  # GPS IFD
    return exif


def _split(jpeg: bytes) -> tuple[bytes, tuple[bytes, ...]]:
    sos = jpeg.index(b"\xff\xda")
    start = sos + 2 + int.from_bytes(jpeg[sos + 2 : sos + 4], "big")
    if not jpeg.endswith(b"\xff\xd9"):
        raise RuntimeError("the encoder wrote a JPEG without EOI")
    data = jpeg[start:-2]
    cuts = [match.end() for match in _RST.finditer(data)]
    return jpeg[:start], tuple(data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)],
                                                         strict=True))


def phone_jpeg(person: Person, seed: int, orientation: int = 1) -> PhoneJpeg:
    """The person's sighting photo on a 12 MP scene, as a phone would store it.

    Orientation 6 (a portrait shot) stores the pixels turned a quarter left, as phones do.
    """
    rng = np.random.default_rng(seed)
    size = FULL_SIZE if orientation == 1 else FULL_SIZE[::-1]
    scene = texture(rng, size)
    with PILImage.open(person.sighting_photo) as photo:
        face = photo.convert("RGB")
    side = face.width * FACE_SCALE
    tile = np.asarray(face.resize((side, side), PILImage.Resampling.BICUBIC))
    x = int(rng.integers(size[0] // 6, size[0] - side - size[0] // 6))
    y = int(rng.integers(size[1] // 6, size[1] - side - size[1] // 6))
    scene[y : y + side, x : x + side] = tile
    stored = scene if orientation == 1 else np.ascontiguousarray(np.rot90(scene, 1))
    marked = stored.copy()
    marked[:, :MCU] = 255 - marked[:, :MCU]  # changes every MCU row, only in its first block
    exif = phone_exif(orientation)
    encoded = []
    for pixels in (stored, marked):
        out = io.BytesIO()
        PILImage.fromarray(pixels).save(out, format="JPEG", quality=JPEG_QUALITY, exif=exif,
                                        subsampling="4:2:0", restart_marker_rows=1)
        encoded.append(_split(out.getvalue()))
    (head, plain), (head_marked, marked_rows) = encoded
    if head != head_marked or len(plain) != len(marked_rows):
        raise RuntimeError("the two encodings do not share their headers")
    return PhoneJpeg(person, head, plain, marked_rows)


# --- the store -------------------------------------------------------------------------------


def serving_model_id() -> str:
    """The model id the server will run with this environment's MATCHER_* settings."""
    from matcher.embed import load_pipeline

    return load_pipeline(Settings(data_dir=REPO / "bench-out")).model_id


def fit_face_model(data: Path, descriptors: Path | None) -> tuple[synthetic.FaceModel, str]:
    """The synthetic face model, fitted to real descriptors of the serving model, and its id.

    The real descriptors (one per photo of lfw-dev and fgnet-dev) are computed once per model
    and cached under bench-out/ (dlib's in bench-out/descriptors.npz, shared with
    scripts/bench_index.py).
    """
    if descriptors is None:
        model_id = serving_model_id()
        name = "descriptors.npz" if model_id == "dlib-resnet-v1" else f"descriptors-{model_id}.npz"
        descriptors = REPO / "bench-out" / name
    if not descriptors.is_file():
        from bench_index import compute_descriptors  # scripts/ is on sys.path when run

        log(f"computing real descriptors for the synthetic faces into {descriptors}")
        compute_descriptors(data, descriptors, Settings(data_dir=REPO / "bench-out"))
    with np.load(descriptors, allow_pickle=False) as cached:
        return synthetic.fit(cached["vectors"], cached["identities"]), str(cached["model_id"])


def fill_store(
    settings: Settings, n_faces: int, model: synthetic.FaceModel, model_id: str, seed: int
) -> int:
    """n_faces synthetic active case faces, one per case photo; returns the number of cases.

    The photo rows name files that do not exist: nothing in this benchmark reads them.
    """
    engine = make_engine(settings)
    migrate(engine)
    data = synthetic.collection(model, n_faces, seed=seed)
    owners = data.owners
    n_cases = int(owners.max()) + 1
    rng = np.random.default_rng(seed)
    categories = (Category.CHILD, Category.ELDERLY)
    step = 10_000
    with engine.begin() as connection:
        for start in range(0, n_cases, step):
            connection.execute(insert(Case), [
                {"id": i + 1, "category": categories[i % 2], "name": f"synthetic {i + 1}",
                 "sex": Sex.UNKNOWN, "age_when_missing": float(rng.integers(1, 90)),
                 "missing_since": dt.date(2020, 1, 1), "status": CaseStatus.ACTIVE,
                 "public_fields": []}
                for i in range(start, min(start + step, n_cases))])
        landmarks = [[100.0, 120.0], [110.0, 120.0], [140.0, 120.0], [150.0, 120.0],
                     [125.0, 150.0]]
        for start in range(0, n_faces, step):
            ids = range(start, min(start + step, n_faces))
            sha = [f"{secrets.token_hex(28)}{i:08x}" for i in ids]
            connection.execute(insert(CasePhoto), [
                {"id": i + 1, "case_id": int(owners[i]) + 1, "sha256": s, "path": photo_path(s),
                 "width": 250, "height": 250} for i, s in zip(ids, sha, strict=True)])
            connection.execute(insert(Face), [
                {"id": i + 1, "case_photo_id": i + 1, "box": [70.0, 70.0, 180.0, 180.0],
                 "landmarks": landmarks, "score": 0.95, "size_px": 110.0, "sharpness": 30.0,
                 "unfit_reasons": [], "fit": True} for i in ids])
            connection.execute(insert(FaceVector), [
                {"face_id": i + 1, "model_id": model_id, "dim": data.vectors.shape[1],
                 "descriptor": data.vectors[i].astype("<f4").tobytes()} for i in ids])
    engine.dispose()
    return n_cases


# --- the server ------------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(data_dir: Path, admin_key: str, timeout_s: float = 600.0) -> Server:
    port = free_port()
    log = data_dir / "serve.log"
    # One tip-app key sends every upload: lift its rate limit (a deployment has many apps).
    env = {"MATCHER_TIP_RATE_PER_MINUTE": "1000000", "MATCHER_TIP_BURST": "1000000",
           **os.environ, "MATCHER_ADMIN_KEY": admin_key}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(REPO / ".venv/bin/matcher"), "serve", "--data-dir", str(data_dir),
             "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited ({process.returncode}):\n"
                                   f"{log.read_text()}")
            try:
                if httpx.get(server.url + "/healthz", timeout=2).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the server did not answer /healthz within {timeout_s} s")
    except BaseException:
        server.stop()
        raise


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create_key(client: httpx.Client, admin: str, role: str) -> str:
    answer = client.post("/v1/keys", headers=auth(admin), json={"role": role, "name": role})
    answer.raise_for_status()
    return str(answer.json()["key"])


def register_case(client: httpx.Client, manager: str, person: Person) -> int | None:
    """A real case with one photo; None when the photo has not exactly one fit face."""
    body = {"category": "child", "name": person.identity, "age_when_missing": 8,
            "missing_since": "2020-05-01", "public_fields": ["name", "photos"]}
    answer = client.post("/v1/cases", headers=auth(manager), json=body)
    answer.raise_for_status()
    case_id = int(answer.json()["id"])
    photo = {"photo": (person.case_photo.name, person.case_photo.read_bytes(), "image/jpeg")}
    answer = client.post(f"/v1/cases/{case_id}/photos", headers=auth(manager), files=photo)
    answer.raise_for_status()
    faces = answer.json()["faces"]
    if len(faces) != 1 or not faces[0]["fit"]:
        client.patch(f"/v1/cases/{case_id}", headers=auth(manager), json={"status": "closed"})
        return None
    return case_id


# --- uploads ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    started: float
    seconds: float
    status: int
    sighting_id: int | None
    case_id: int  # the case of the person in the photo


@dataclass
class Uploader:
    """Sends sighting photos; every upload gets pixels no other upload had."""

    url: str
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


@dataclass
class CpuMeter:
    """CPU seconds used by the server, by this client and by everything else on the machine
    (Linux /proc), so a run on a busy machine shows it: "others" should be near 0."""

    server_pid: int | None  # None: this process is the server (in-process stages)
    _start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def _now(self) -> tuple[float, float, float, float]:
        try:
            tick = os.sysconf("SC_CLK_TCK")
            server = 0.0
            if self.server_pid is not None:
                stat = Path(f"/proc/{self.server_pid}/stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()
                server = (int(fields[11]) + int(fields[12])) / tick
            total = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
            busy = (sum(total[:8]) - total[3] - total[4]) / tick  # all but idle and iowait
        except (OSError, ValueError, IndexError):
            return (float("nan"),) * 4
        own = os.times()
        return time.perf_counter(), server, own.user + own.system, busy

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> tuple[float, float, float, float]:
        """(wall, server, client, machine) seconds since start()."""
        end = self._now()
        wall, server, client, busy = (b - a for a, b in zip(self._start, end, strict=True))
        return wall, server, client, busy


def cpu_figures(use: tuple[float, float, float, float], sightings: int) -> dict[str, float]:
    wall, server, client, busy = use
    return {"server_cpu_ms_per_sighting": 1000 * server / max(sightings, 1),
            "server_cores": server / wall, "client_cores": client / wall,
            "others_cores": max(0.0, busy - server - client) / wall}


def sequential(
    uploader: Uploader, count: int, meter: CpuMeter
) -> tuple[dict[str, float], list[Upload]]:
    with httpx.Client(base_url=uploader.url, timeout=120) as client:
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

    def client_loop() -> None:
        with httpx.Client(base_url=uploader.url, timeout=300) as client:
            while time.perf_counter() < stop_at:
                upload = uploader.send(client)
                with done:
                    uploads.append(upload)

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
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


def stored_sightings(settings: Settings) -> int:
    from sqlalchemy import func, select

    from matcher.store.models import Sighting

    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(Sighting)).scalar_one())
    finally:
        engine.dispose()


# --- in-process stages -----------------------------------------------------------------------


def stages(
    photos: list[PhoneJpeg], repeats: int, work: Path
) -> tuple[dict[str, float], dict[str, float]]:
    """Median ms per stage, single stream, each call on an upload nobody decoded before."""
    from matcher.embed import load_pipeline
    from matcher.embed.image import load_image
    from matcher.store.photos import encode_jpeg, store_photo

    settings = Settings(data_dir=REPO / "bench-out")
    pipeline = load_pipeline(settings)
    decode = partial(load_image, max_bytes=settings.max_image_bytes,
                     max_pixels=settings.max_image_pixels)
    times: dict[str, list[float]] = {}

    def timed(name: str, run: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        result = run(*args)
        times.setdefault(name, []).append((time.perf_counter() - start) * 1000)
        return result

    meter = CpuMeter(None)
    for number in range(repeats + 1):  # the first round warms up and is dropped
        if number == 1:
            meter.start()
        data = photos[number % len(photos)].variant(number)
        image = timed("decode (load_image)", decode, data)
        timed("detect + embed (pipeline.process)", pipeline.process, [image])
        timed("re-encode (encode_jpeg)", encode_jpeg, image)
        timed("store_photo (re-encode, hash, fsynced write)", store_photo, work, image)
        if number == 0:
            times.clear()
    wall, _, own, busy = meter.stop()
    return {name: statistics.median(values) for name, values in times.items()}, {
        "own_cores": own / wall, "others_cores": max(0.0, busy - own) / wall}


# --- the run ---------------------------------------------------------------------------------


def machine(threads: str, workers: str) -> str:
    import fastapi
    import torch
    import uvicorn

    return (f"{describe_machine()}, torch {torch.__version__} ({threads} threads), Pillow "
            f"{PILImage.__version__} (libjpeg-turbo {features.version('libjpeg_turbo')}), numpy "
            f"{np.__version__}, fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}; "
            f"MATCHER_WORKERS={workers}")


def median_report(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=100_000,
                        help="synthetic active case faces (the --people real ones come on top)")
    parser.add_argument("--people", type=int, default=8,
                        help="real cases (LFW-dev people) whose other photos are the sightings")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--duration", type=float, default=30.0, help="s of concurrent uploads")
    parser.add_argument("--warmup", type=float, default=5.0, help="s before the measured window")
    parser.add_argument("--sequential", type=int, default=40, help="one-at-a-time uploads")
    parser.add_argument("--repeats", type=int, default=3, help="runs of both phases; medians")
    parser.add_argument("--orientation", type=int, choices=(1, 6), default=1,
                        help="EXIF orientation of the photos (6: a portrait shot)")
    parser.add_argument("--stages", action="store_true",
                        help="time the ingest stages in this process instead (no server)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    parser.add_argument("--work", type=Path, help="where the throwaway data dir goes")
    parser.add_argument("--descriptors", type=Path, help="real descriptors (.npz: vectors, "
                        "identities, model_id) of the serving model; default: computed once "
                        "into bench-out/")
    parser.add_argument("--data", type=Path, default=research_data_dir())
    args = parser.parse_args(argv)
    # A terminated benchmark unwinds like an interrupted one: the server stops, the dir goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    settings = Settings()  # what the server will read from the environment
    about = machine(str(settings.threads), str(settings.workers))
    print(about, file=sys.stderr)
    people = lfw_people(args.data)
    work = Path(tempfile.mkdtemp(prefix="bench-service-", dir=args.work))
    try:
        if args.stages:
            photos = [phone_jpeg(p, seed, args.orientation)
                      for seed, p in enumerate(people[: args.people])]
            times, cpu = stages(photos, args.repeats, work)
            report: dict[str, Any] = {"machine": about, "repeats": args.repeats,
                                      "stages_ms": times, "cpu": cpu}
        else:
            report = run_service(args, people, work, about)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"data dir kept: {work}", file=sys.stderr)
    print(json.dumps(report, indent=1) if args.json else table(report))
    return 0 if not report.get("problems") else 1


def run_service(args: argparse.Namespace, people: list[Person], work: Path,
                about: str) -> dict[str, Any]:
    settings = Settings(data_dir=work)
    model, model_id = fit_face_model(args.data, args.descriptors)
    step = time.perf_counter()
    n_synthetic = args.faces
    cases = fill_store(settings, n_synthetic, model, model_id, seed=0)
    log(f"store filled: {n_synthetic} synthetic faces of {cases} cases "
        f"({time.perf_counter() - step:.0f} s)")
    admin = f"mk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
    step = time.perf_counter()
    server = start_server(work, admin)
    log(f"server up at {server.url} ({time.perf_counter() - step:.0f} s)")
    try:
        serving = httpx.get(server.url + "/healthz").json()["model_id"]
        if serving != model_id:
            raise RuntimeError(f"the server runs {serving}; the synthetic faces are {model_id}'s")
        with httpx.Client(base_url=server.url, timeout=120) as client:
            manager = create_key(client, admin, "case_manager")
            tip = create_key(client, admin, "tip_app")
            investigator = create_key(client, admin, "investigator")
            photos = planted_photos(client, manager, people, args)
        uploader = Uploader(server.url, tip, photos)
        meter = CpuMeter(server.process.pid)
        with httpx.Client(base_url=server.url, timeout=120) as client:  # warm-up, one each
            warm = [uploader.send(client, photo) for photo in photos]
        runs_seq, runs_con, uploads = [], [], list(warm)
        for repeat in range(args.repeats):
            figures, done = sequential(uploader, args.sequential, meter)
            runs_seq.append(figures)
            uploads += done
            log(f"run {repeat + 1}: sequential {figures}")
            figures, done = concurrent(uploader, args.clients, args.duration, args.warmup, meter)
            runs_con.append(figures)
            uploads += done
            log(f"run {repeat + 1}: concurrent {figures}")
        top_k = Settings().match_top_k
        checked = verify(server.url, investigator, uploads, top_k)
        stored = stored_sightings(settings)
        if stored != checked["acknowledged"]:
            checked["problems"].append(f"{stored} sightings stored, "
                                       f"{checked['acknowledged']} acknowledged")
    finally:
        server.stop()
    return {
        "machine": about, "model_id": model_id, "faces": n_synthetic + len(photos),
        "cases": cases + len(photos),
        "photo": photo_summary(photos, args.orientation), "repeats": args.repeats,
        "sequential": median_report(runs_seq), "concurrent": median_report(runs_con),
        "runs": {"sequential": runs_seq, "concurrent": runs_con},
        "acknowledged": checked["acknowledged"], "stored": stored,
        "planted_first": checked["planted_first"], "problems": checked["problems"],
    }


def planted_photos(client: httpx.Client, manager: str, people: list[Person],
                   args: argparse.Namespace) -> list[tuple[PhoneJpeg, int]]:
    """Real cases, and the phone photos of their people (--people of them)."""
    photos: list[tuple[PhoneJpeg, int]] = []
    for seed, person in enumerate(people):
        if len(photos) == args.people:
            break
        case_id = register_case(client, manager, person)
        if case_id is not None:
            photos.append((phone_jpeg(person, seed, args.orientation), case_id))
    if len(photos) < args.people:
        raise RuntimeError(f"only {len(photos)} people with one fit face in their photo")
    log(f"{len(photos)} real cases registered; photos built")
    return photos


def photo_summary(photos: list[tuple[PhoneJpeg, int]], orientation: int) -> str:
    sizes = [len(photo.variant(0)) for photo, _ in photos]
    return (f"{FULL_SIZE[0]}x{FULL_SIZE[1]} JPEG q{JPEG_QUALITY} 4:2:0, one face, EXIF GPS, "
            f"orientation {orientation}, {statistics.median(sizes) / 1e6:.1f} MB median, "
            f"{len(photos)} people")


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def table(report: dict[str, Any]) -> str:
    lines = [report["machine"]]
    if "stages_ms" in report:
        lines.append(f"in-process stages, single stream, median of {report['repeats']} (ms):")
        lines += [f"  {name:46} {ms:8.1f}" for name, ms in report["stages_ms"].items()]
        lines.append("cores busy: this process {own_cores:.2f}, others {others_cores:.2f}"
                     .format(**report["cpu"]))
        return "\n".join(lines)
    seq, con = report["sequential"], report["concurrent"]
    lines += [
        f"model {report['model_id']}; {report['faces']} case faces of {report['cases']} cases",
        report["photo"],
        f"medians of {report['repeats']} runs; CPU in cores busy (others: not this benchmark)",
        "phase                 sightings/s  p50 ms  p99 ms  non-201  server CPU ms/sighting"
        "  server  client  others",
    ]
    for name, row in ((f"sequential x {seq['uploads']:.0f}", seq),
                      (f"{con['clients']:.0f} clients x {con['duration_s']:.0f} s", con)):
        lines.append(f"{name:21} {row['sightings_per_s']:11.2f} {row['p50_ms']:7.0f} "
                     f"{row['p99_ms']:7.0f} {row['non_201']:8.0f} "
                     f"{row['server_cpu_ms_per_sighting']:22.0f} {row['server_cores']:7.2f} "
                     f"{row['client_cores']:7.2f} {row['others_cores']:7.2f}")
    lines.append(f"checked: {report['acknowledged']} acknowledged, {report['stored']} stored, "
                 f"planted person first {report['planted_first']:.3f}, "
                 f"problems: {len(report['problems'])}")
    lines += [f"  {problem}" for problem in report["problems"][:20]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
