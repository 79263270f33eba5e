"""End-to-end benchmark of the service: sighting upload -> candidates stored, on a live server.

1. A throwaway data dir whose store holds `faces` synthetic active case faces
   (matcher.bench.bulk, descriptors from matcher.bench.synthetic fitted to real descriptors of
   the research photos by the serving model), so the server starts with the index kind of that
   size; then `people` real cases registered through the API with an LFW-dev photo each.
2. `matcher serve` in a subprocess (matcher.bench.server), keys created through POST /v1/keys.
3. Sightings: phone-like 12 MP JPEGs of a case's person (matcher.bench.phone), no two decoding
   to the same pixels.
4. (a) `sequential` uploads one at a time: p50/p99 latency; (b) `clients` concurrent clients
   for `duration` seconds: sustained sightings/s (201s completed after `warmup` s), p50/p99 and
   the count of answers other than 201. `repeats` runs of both on the same server; medians.
5. Then every acknowledged sighting is read back through the investigator API: it must exist
   with its face, and each fit face must have its top-k candidates; the store's sighting count
   must equal the acknowledged count. "planted first" = the case of the person in the photo
   ranked first.

With `stages`, the same photos are timed in this process instead, stage by stage
(matcher.bench.stages). Needs the dev extras (httpx) and the research photos.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image as PILImage
from PIL import features

from matcher.bench import synthetic
from matcher.bench.bulk import count_sightings, fill_case_faces
from matcher.bench.cpu import CpuMeter
from matcher.bench.descriptors import BENCH_OUT, cached_face_model, descriptors_file
from matcher.bench.machine import describe_machine
from matcher.bench.phone import Person, PhoneJpeg, describe_photos, lfw_people, phone_jpeg
from matcher.bench.server import create_key, register_case, start_server, throwaway_database
from matcher.bench.stages import stages
from matcher.bench.uploads import Uploader, concurrent, sequential, verify
from matcher.config import Settings
from matcher.eval.manifest import research_data_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceBench:
    """What one run measures, with the defaults of the published figures (docs/pipeline.md)."""

    faces: int = 100_000  # synthetic active case faces (the `people` real ones come on top)
    people: int = 8  # real cases (LFW-dev people) whose other photos are the sightings
    clients: int = 8
    duration: float = 30.0  # s of concurrent uploads
    warmup: float = 5.0  # s before the measured window
    sequential: int = 40  # one-at-a-time uploads
    repeats: int = 3  # runs of both phases; medians
    orientation: int = 1  # EXIF orientation of the photos (6: a portrait shot)
    stages: bool = False  # time the ingest stages in this process instead (no server)
    descriptors: Path | None = None  # real descriptors of the serving model; default: cached
    data: Path = field(default_factory=research_data_dir)
    work: Path | None = None  # where the throwaway data dir goes
    keep: bool = False  # keep the data dir
    processes: int = 1  # serving processes on the one store (issue 23), clients in turn
    database_url: str | None = None  # a PostgreSQL server for the store (default: SQLite)


def run(bench: ServiceBench) -> dict[str, Any]:
    """One run's report, in a throwaway data dir (removed afterwards unless `keep`)."""
    settings = Settings()  # what the server will read from the environment
    about = machine(str(settings.threads), str(settings.workers))
    log.info(about)
    people = lfw_people(bench.data)
    work = Path(tempfile.mkdtemp(prefix="bench-service-", dir=bench.work))
    try:
        if bench.stages:
            photos = [phone_jpeg(p, seed, bench.orientation)
                      for seed, p in enumerate(people[: bench.people])]
            times, cpu = stages(photos, bench.repeats, work)
            return {"machine": about, "repeats": bench.repeats, "stages_ms": times, "cpu": cpu}
        return run_service(bench, people, work, about)
    finally:
        if not bench.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log.info("data dir kept: %s", work)


def run_service(bench: ServiceBench, people: list[Person], work: Path,
                about: str) -> dict[str, Any]:
    with ExitStack() as cleanup:
        url, overrides = throwaway_database(cleanup, "bench-service", bench.database_url)
        return _run_service(bench, people, Settings(data_dir=work, database_url=url),
                            overrides, about)


def _run_service(bench: ServiceBench, people: list[Person], settings: Settings,
                 overrides: dict[str, str], about: str) -> dict[str, Any]:
    work = settings.data_dir
    model, model_id = face_model(bench.data, bench.descriptors)
    step = time.perf_counter()
    cases = fill_case_faces(settings, bench.faces, model, model_id, seed=0)
    log.info("store filled: %d synthetic faces of %d cases (%.0f s)", bench.faces, cases,
             time.perf_counter() - step)
    admin = f"mk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
    step = time.perf_counter()
    servers = []
    try:
        for number in range(bench.processes):
            servers.append(start_server(work, admin, settings=overrides,
                                        log_name=f"serve-{number}.log"))
        server = servers[0]
        log.info("%d servers up, the first at %s (%.0f s)", len(servers), server.url,
                 time.perf_counter() - step)
        serving = httpx.get(server.url + "/healthz").json()["model_id"]
        if serving != model_id:
            raise RuntimeError(f"the server runs {serving}; the synthetic faces are {model_id}'s")
        with httpx.Client(base_url=server.url, timeout=120) as client:
            manager = create_key(client, admin, "case_manager")
            tip = create_key(client, admin, "tip_app")
            investigator = create_key(client, admin, "investigator")
            photos = planted_photos(client, manager, people, bench)
        uploader = Uploader([s.url for s in servers], tip, photos)
        meter = CpuMeter(tuple(s.process.pid for s in servers))
        with httpx.Client(base_url=server.url, timeout=120) as client:  # warm-up, one each
            warm = [uploader.send(client, photo) for photo in photos]
        runs_seq, runs_con, uploads = [], [], list(warm)
        for repeat in range(bench.repeats):
            figures, done = sequential(uploader, bench.sequential, meter)
            runs_seq.append(figures)
            uploads += done
            log.info("run %d: sequential %s", repeat + 1, figures)
            figures, done = concurrent(uploader, bench.clients, bench.duration, bench.warmup,
                                       meter)
            runs_con.append(figures)
            uploads += done
            log.info("run %d: concurrent %s", repeat + 1, figures)
        checked = verify(server.url, investigator, uploads, Settings().match_top_k)
        stored = count_sightings(settings)
        if stored != checked["acknowledged"]:
            checked["problems"].append(f"{stored} sightings stored, "
                                       f"{checked['acknowledged']} acknowledged")
    finally:
        for running in servers:
            running.stop()
    return {
        "machine": about, "model_id": model_id, "processes": bench.processes,
        "store": "sqlite" if settings.database_url is None else "postgresql",
        "faces": bench.faces + len(photos),
        "cases": cases + len(photos),
        "photo": describe_photos([photo for photo, _ in photos], bench.orientation),
        "repeats": bench.repeats,
        "sequential": median_report(runs_seq), "concurrent": median_report(runs_con),
        "runs": {"sequential": runs_seq, "concurrent": runs_con},
        "acknowledged": checked["acknowledged"], "stored": stored,
        "planted_first": checked["planted_first"], "problems": checked["problems"],
    }


def face_model(data: Path, descriptors: Path | None) -> tuple[synthetic.FaceModel, str]:
    """The synthetic face model, fitted to real descriptors of the serving model, and its id.

    The real descriptors (one per photo of lfw-dev and fgnet-dev) are computed once per model
    and cached under bench-out/ (dlib's in bench-out/descriptors.npz, shared with the index
    benchmark).
    """
    settings = Settings(data_dir=BENCH_OUT)  # its weight cache
    if descriptors is None:
        from matcher.wiring import load_pipeline

        descriptors = descriptors_file(load_pipeline(settings).model_id)
    model, model_id = cached_face_model(descriptors, data, settings)
    if model_id is None:
        raise RuntimeError(f"{descriptors} does not say which model made it (no model_id)")
    return model, model_id


def planted_photos(client: httpx.Client, manager: str, people: list[Person],
                   bench: ServiceBench) -> list[tuple[PhoneJpeg, int]]:
    """Real cases, and the phone photos of their people (`people` of them)."""
    photos: list[tuple[PhoneJpeg, int]] = []
    for seed, person in enumerate(people):
        if len(photos) == bench.people:
            break
        case_id = register_case(client, manager, person)
        if case_id is not None:
            photos.append((phone_jpeg(person, seed, bench.orientation), case_id))
    if len(photos) < bench.people:
        raise RuntimeError(f"only {len(photos)} people with one fit face in their photo")
    log.info("%d real cases registered; photos built", len(photos))
    return photos


def machine(threads: str, workers: str) -> str:
    """The machine line, with the versions that decide the figures."""
    import fastapi
    import torch
    import uvicorn

    return (f"{describe_machine()}, torch {torch.__version__} ({threads} threads), Pillow "
            f"{PILImage.__version__} (libjpeg-turbo {features.version('libjpeg_turbo')}), numpy "
            f"{np.__version__}, fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}; "
            f"MATCHER_WORKERS={workers}")


def median_report(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def table(report: dict[str, Any]) -> str:
    """The report as the table docs/pipeline.md quotes."""
    lines = [report["machine"]]
    if "stages_ms" in report:
        lines.append(f"in-process stages, single stream, median of {report['repeats']} (ms):")
        lines += [f"  {name:46} {ms:8.1f}" for name, ms in report["stages_ms"].items()]
        lines.append("cores busy: this process {own_cores:.2f}, others {others_cores:.2f}"
                     .format(**report["cpu"]))
        return "\n".join(lines)
    seq, con = report["sequential"], report["concurrent"]
    lines += [
        f"model {report['model_id']}; {report['faces']} case faces of {report['cases']} cases; "
        f"{report['processes']} serving process(es) on one {report['store']} store",
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
