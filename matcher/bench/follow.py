"""Benchmark of several serving processes on one store (issue 23): how long after a case photo
is committed through one process it is searchable on the others.

`processes` live `matcher serve` processes share one throwaway data dir and one store (a fresh
database on the PostgreSQL server `database_url`, where LISTEN/NOTIFY wakes the followers;
else SQLite in the data dir, where they poll every MATCHER_INDEX_FOLLOW_S). Each sample
registers a real case (an LFW-dev person's photo) through the next process in turn; the clock
starts when its photo upload is answered, and each other process's lag is the time until its
`matcher_index_case_faces` gauge (read from /metrics, polled) holds the new faces. The poll's
own cost (a few ms per scrape) is in the figure: it bounds the resolution.
"""

from __future__ import annotations

import logging
import secrets
import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from matcher.bench.phone import lfw_people
from matcher.bench.queue import machine
from matcher.bench.server import Server, create_key, register_case, start_server, workplace
from matcher.eval.manifest import research_data_dir
from matcher.store import migrate
from matcher.wiring import make_engine

log = logging.getLogger(__name__)
GAUGE = "matcher_index_case_faces"


@dataclass(frozen=True)
class FollowBench:
    processes: int = 3
    samples: int = 30  # cases registered, one after the other
    database_url: str | None = None  # a PostgreSQL server (default: SQLite)
    timeout_s: float = 10.0  # a lag longer than this is reported as a failure
    data: Path = field(default_factory=research_data_dir)


def run(bench: FollowBench) -> dict[str, Any]:
    with ExitStack() as cleanup:
        place = workplace(cleanup, "bench-follow", bench.database_url)
        engine = make_engine(place.settings)
        try:
            migrate(engine)
            about = machine(engine)
        finally:
            engine.dispose()
        admin = f"mk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
        servers: list[Server] = []
        for number in range(bench.processes):
            servers.append(start_server(place.work, admin, settings=place.overrides,
                                        log_name=f"serve-{number}.log"))
            cleanup.callback(servers[-1].stop)
        log.info("%d servers up on one store", len(servers))
        lags, missed = measure(servers, admin, bench)
    ordered = sorted(lags)
    return {"machine": about, "processes": bench.processes, "samples": bench.samples,
            "store": "postgresql" if bench.database_url else "sqlite",
            "lags": len(lags), "missed": missed,
            "p50_ms": 1000 * statistics.median(ordered) if ordered else None,
            "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
            if ordered else None,
            "max_ms": 1000 * ordered[-1] if ordered else None}


def measure(servers: list[Server], admin: str, bench: FollowBench) -> tuple[list[float], int]:
    """Each sample's lag on every process but the one it was registered through (s), and how
    many never caught up within the timeout."""
    people = lfw_people(bench.data)
    with httpx.Client(base_url=servers[0].url, timeout=120) as client:
        manager = create_key(client, admin, "case_manager")
    lags: list[float] = []
    missed = 0
    scrapers = [httpx.Client(base_url=server.url, timeout=10) for server in servers]
    try:
        held = [_gauge(scraper) for scraper in scrapers]
        person = iter(people)
        for sample in range(bench.samples):
            origin = sample % len(servers)
            with httpx.Client(base_url=servers[origin].url, timeout=120) as client:
                case_id = None
                while case_id is None:  # a photo with exactly one fit face
                    case_id = register_case(client, manager, next(person))
            committed = time.perf_counter()
            want = _gauge(scrapers[origin])
            for index, scraper in enumerate(scrapers):
                if index == origin:
                    continue
                lag = _wait_for(scraper, want, committed, bench.timeout_s)
                if lag is None:
                    missed += 1
                else:
                    lags.append(lag)
            held = [_gauge(scraper) for scraper in scrapers]
            log.info("sample %d through process %d: faces held %s", sample + 1, origin, held)
    finally:
        for scraper in scrapers:
            scraper.close()
    return lags, missed


def _wait_for(scraper: httpx.Client, want: float, since: float,
              timeout_s: float) -> float | None:
    while True:
        if _gauge(scraper) >= want:
            return time.perf_counter() - since
        if time.perf_counter() - since > timeout_s:
            return None
        time.sleep(0.002)


def _gauge(scraper: httpx.Client) -> float:
    for line in scraper.get("/metrics").text.splitlines():
        if line.startswith(GAUGE + " "):
            return float(line.split()[1])
    raise RuntimeError(f"no {GAUGE} in /metrics")


def table(report: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    return "\n".join([
        f"machine: {report['machine']}",
        f"{report['processes']} processes on one {report['store']} store, "
        f"{report['samples']} case photos, each through the next process",
        "| lags measured | p50 ms | p99 ms | max ms | never caught up |",
        "|---|---|---|---|---|",
        f"| {report['lags']} | {ms(report['p50_ms'])} | {ms(report['p99_ms'])} | "
        f"{ms(report['max_ms'])} | {report['missed']} |",
    ])
