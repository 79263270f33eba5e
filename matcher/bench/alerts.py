"""Benchmark of the alert feed tip apps read (issue 22: an answer by point at 10,000 active
alerts, p50 <= 20 ms on 2 cores).

A store is filled in bulk with `alerts` active alerts (and `resolved` ones resolved within the
window), each of its own case, at points spread uniformly over a territory of about 900 x 900
km, issued at times spread over the last `hours` (so about a sixth still at 100 km, a third at
500 km and half everywhere, with the child schedule). A live `matcher serve` over it (a child
process, as an operator runs it) answers over loopback HTTP with a tip-app key, keep-alive:
the first answer (which reads every alert into the process's book), then `points` answers by
point at random points of the territory, the same number of polls with `updated_since` (the
cursor of the answer before: nothing changed) and of answers without a point. Each figure is
the wall time of one request at the client, key check and JSON included.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from sqlalchemy import Engine, insert, update

from matcher.bench.queue import machine
from matcher.bench.server import auth, create_key, start_server, workplace
from matcher.config import Settings
from matcher.service.alert_areas import schedules
from matcher.store import migrate
from matcher.store.alerts import Alert, AlertSequence
from matcher.store.models import Case
from matcher.vocabulary import AlertOutcome, AlertStatus, CaseStatus, Category
from matcher.wiring import make_engine

log = logging.getLogger(__name__)

# About metropolitan France: 900 km across each way.
TERRITORY = ((43.0, 51.0), (-4.5, 7.5))


@dataclass(frozen=True)
class AlertBench:
    """What one run measures, with the defaults of the published figure (docs/api.md)."""

    alerts: int = 10_000  # active
    resolved: int = 1_000  # resolved within the window, shown as such
    hours: float = 6.0  # issue times spread over the last this many hours
    points: int = 300  # answers timed of each kind
    limit: int = 100  # alerts per page
    database_url: str | None = None  # a PostgreSQL server (default: SQLite)
    seed: int = 0


def run(bench: AlertBench) -> dict[str, Any]:
    """Fill a throwaway store, serve it, time the answers; the report."""
    with ExitStack() as cleanup:
        place = workplace(cleanup, "bench-alerts", bench.database_url)
        work, settings, overrides = place.work, place.settings, place.overrides
        engine = make_engine(settings)
        try:
            migrate(engine)
            about = machine(engine)
            fill_alerts(engine, bench, settings)
        finally:
            engine.dispose()
        log.info("%d active and %d resolved alerts stored; starting the server", bench.alerts,
                 bench.resolved)
        admin = f"mk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
        server = start_server(work, admin, settings=overrides)
        cleanup.callback(server.stop)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            tip = create_key(client, admin, "tip_app")
            client.headers.update(auth(tip))
            return {"machine": about, **vars(bench), "database_url": None,
                    **time_answers(client, bench)}


def fill_alerts(engine: Engine, bench: AlertBench, settings: Settings) -> None:
    """One case per alert, each publishing its name; alerts issued over the last `hours`, the
    last `resolved` of them resolved (found) since, within the window."""
    rng = np.random.default_rng(bench.seed)
    now = dt.datetime.now(dt.UTC)
    n = bench.alerts + bench.resolved
    lats = rng.uniform(*TERRITORY[0], n)
    lons = rng.uniform(*TERRITORY[1], n)
    ages = rng.uniform(0, bench.hours * 3600, n)
    window = settings.alert_resolved_hours * 3600
    schedule = [list(step) for step in schedules(settings)[Category.CHILD].as_lists()]
    cases, alerts = [], []
    for i in range(n):
        issued = now - dt.timedelta(seconds=float(ages[i]))
        resolved = i >= bench.alerts
        resolved_at = (issued + dt.timedelta(seconds=float(rng.uniform(0, min(ages[i], window))))
                       if resolved else None)
        seen = issued - dt.timedelta(hours=1)
        cases.append({
            "id": i + 1, "category": Category.CHILD, "name": f"Child {i + 1}",
            "age_when_missing": 8.0, "missing_since": seen.date(),
            "last_seen_lat": float(lats[i]), "last_seen_lon": float(lons[i]),
            "last_seen_at": seen, "description": "",
            "status": CaseStatus.FOUND if resolved else CaseStatus.ACTIVE,
            "public_fields": ["name", "missing_since", "photos"], "created_at": seen,
            "updated_at": seen})
        alerts.append({
            "id": i + 1, "case_id": i + 1, "open_case_id": None if resolved else i + 1,
            "category": Category.CHILD, "lat": float(lats[i]), "lon": float(lons[i]),
            "last_seen_at": seen, "schedule": schedule,
            "status": AlertStatus.RESOLVED if resolved else AlertStatus.ACTIVE,
            "outcome": AlertOutcome.FOUND if resolved else None, "issued_at": issued,
            "issued_by": "bench", "resolved_at": resolved_at, "issued_seq": i + 1,
            "resolved_seq": n + i - bench.alerts + 1 if resolved else None,
            "changed_seq": n + i - bench.alerts + 1 if resolved else i + 1})
    with engine.begin() as connection:
        for start in range(0, n, 2000):
            connection.execute(insert(Case), cases[start:start + 2000])
            connection.execute(insert(Alert), alerts[start:start + 2000])
        connection.execute(update(AlertSequence).values(value=n + bench.resolved))
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("ANALYZE")


def time_answers(client: httpx.Client, bench: AlertBench) -> dict[str, Any]:
    rng = np.random.default_rng(bench.seed + 1)
    points = np.column_stack([rng.uniform(*TERRITORY[0], bench.points),
                              rng.uniform(*TERRITORY[1], bench.points)])
    begun = time.perf_counter()
    first = _get(client, {"lat": points[0][0], "lon": points[0][1], "limit": bench.limit})
    first_ms = (time.perf_counter() - begun) * 1000
    by_point, shown, cursors = [], [], []
    for lat, lon in points:
        ms, page = _timed(client, {"lat": lat, "lon": lon, "limit": bench.limit})
        by_point.append(ms)
        shown.append(len(page["alerts"]))
        cursors.append(page["changes_cursor"])
    polls = [_timed(client, {"lat": lat, "lon": lon, "updated_since": cursor})[0]
             for (lat, lon), cursor in zip(points, cursors, strict=True)]
    everywhere = [_timed(client, {"limit": bench.limit})[0] for _ in range(bench.points)]
    return {
        "first_ms": first_ms, "first_alerts": len(first["alerts"]),
        "by_point": _summary(by_point), "alerts_per_page": statistics.median(shown),
        "poll": _summary(polls), "no_point": _summary(everywhere),
    }


def _get(client: httpx.Client, params: dict[str, Any]) -> dict[str, Any]:
    answer = client.get("/v1/alerts", params=params)
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def _timed(client: httpx.Client, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    begun = time.perf_counter()
    body = _get(client, params)
    return (time.perf_counter() - begun) * 1000, body


def _summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {"p50": statistics.median(ordered), "p90": ordered[int(0.9 * (len(ordered) - 1))],
            "max": ordered[-1]}


def table(report: dict[str, Any]) -> str:
    """The report as docs/api.md quotes it."""
    rows = [("by point", report["by_point"]), ("poll (updated_since)", report["poll"]),
            ("no point", report["no_point"])]
    return "\n".join([
        report["machine"],
        f"{report['alerts']} active alerts (+{report['resolved']} resolved), issued over the "
        f"last {report['hours']:g} h, {report['limit']} per page; {report['points']} answers "
        f"of each kind over loopback HTTP (median {report['alerts_per_page']:.0f} alerts per "
        f"answer by point); the first answer (reads every alert) took "
        f"{report['first_ms']:.0f} ms",
        "answer                 p50 ms   p90 ms   max ms",
        *(f"{name:20} {s['p50']:8.1f} {s['p90']:8.1f} {s['max']:8.1f}" for name, s in rows),
    ])

