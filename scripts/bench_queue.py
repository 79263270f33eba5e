"""Benchmark the investigators' review queue (matcher.store.review.review_rows) on a large
store, before and after revision 0005 (the queue's indexes on candidates).

    .venv/bin/python scripts/bench_queue.py [--candidates 1000000] [--pending 0.9]
        [--deep 10000] [--repeats 3] [--calls 3] [--database-url URL] [--json]

1. A throwaway store migrated to head by the project's own code: SQLite in a temp dir, or,
   with --database-url (PostgreSQL; a role allowed to CREATE DATABASE), a fresh database on
   that server, dropped afterwards.
2. Rows bulk-inserted with SQLAlchemy core: --candidates / 200 cases (one photo with one face
   each), --candidates / 5 sightings of one face each, and 5 candidates of distinct cases per
   sighting face: distances uniform in [0.2, 0.8), threshold 0.6, a --pending share pending
   and the rest confirmed, rejected or needs_info. PostgreSQL is ANALYZEd then (as autovacuum
   would); SQLite is not (the service never runs ANALYZE).
3. Pages of up to 50 rows, each read in a fresh session: the default queue's (pending, under
   the threshold, closest first) first page, its page after --deep rows (cursor computed
   beforehand) and one case's first page; and that case's confirmed matches, newest sighting
   first (what the (status, case_id) index of 0004 served). Each run times every page --calls
   times (median) with the schema at 0004 (Alembic downgrade), then at 0005 (upgrade); the
   table shows the medians of --repeats runs, the upgrade's time and the plans chosen.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy
from alembic import command
from sqlalchemy import Connection, Engine, event, insert, select, text
from sqlalchemy.orm import Session

from matcher.bench.machine import describe_machine
from matcher.config import Settings
from matcher.store import make_engine, migrate
from matcher.store.db import alembic_config, fresh_database
from matcher.store.models import (
    Candidate,
    CandidateStatus,
    Case,
    CasePhoto,
    CaseStatus,
    Category,
    Face,
    Sex,
    Sighting,
)
from matcher.store.review import Cursor, ReviewQuery, review_rows

BEFORE, AFTER = "0004", "0005"  # the revisions compared
PER_FACE = 5  # candidates per sighting face, of distinct cases
PER_CASE = 200  # candidates per case, on average
THRESHOLD = 0.6
CHUNK = 50_000
WHEN = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
OTHER = (CandidateStatus.CONFIRMED, CandidateStatus.REJECTED, CandidateStatus.NEEDS_INFO)
FACE = {"box": [70.0, 70.0, 180.0, 180.0], "landmarks": [[100.0, 120.0]] * 5, "score": 0.95,
        "size_px": 110.0, "sharpness": 30.0, "unfit_reasons": [], "fit": True}


# --- the store -------------------------------------------------------------------------------


@contextmanager
def throwaway_store(database_url: str | None) -> Iterator[Engine]:
    """A migrated, empty store: SQLite in a temp dir, or a fresh database on the server."""
    with ExitStack() as cleanup:  # unwinds in reverse: the engine goes before its database
        if database_url is None:
            work = Path(tempfile.mkdtemp(prefix="bench-queue-"))
            cleanup.callback(shutil.rmtree, work, ignore_errors=True)
            settings = Settings(data_dir=work)
        else:
            url = cleanup.enter_context(fresh_database(database_url, "bench_queue"))
            settings = Settings(database_url=url)
        engine = make_engine(settings)
        cleanup.callback(engine.dispose)
        migrate(engine)
        yield engine


def fill(engine: Engine, n_candidates: int, pending: float, seed: int) -> int:
    """Cases, photos, faces, sightings and candidates; returns the number of cases."""
    n_faces = -(-n_candidates // PER_FACE)  # sighting faces
    n_cases = max(PER_FACE, n_candidates // PER_CASE)
    with engine.begin() as connection:
        _fill_cases(connection, n_cases)
        _fill_sightings(connection, n_faces, first_face=n_cases + 1)
        _fill_candidates(connection, n_candidates, n_cases, pending,
                         np.random.default_rng(seed))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
    return n_cases


def _fill_cases(connection: Connection, n_cases: int) -> None:
    """Case i has photo i with face i."""
    for start, stop in _chunks(n_cases):
        ids = range(start + 1, stop + 1)
        connection.execute(insert(Case), [
            {"id": i, "category": Category.CHILD, "name": f"case {i}", "sex": Sex.UNKNOWN,
             "age_when_missing": 8.0, "missing_since": dt.date(2020, 1, 1),
             "status": CaseStatus.ACTIVE, "public_fields": [], "created_at": WHEN,
             "updated_at": WHEN} for i in ids])
        connection.execute(insert(CasePhoto), [
            {"id": i, "case_id": i, "sha256": f"{i:064x}", "path": f"cases/{i}.jpg",
             "width": 250, "height": 250, "created_at": WHEN} for i in ids])
        connection.execute(insert(Face), [{"id": i, "case_photo_id": i, **FACE} for i in ids])


def _fill_sightings(connection: Connection, n_faces: int, first_face: int) -> None:
    """Sighting i (from 1) has face first_face + i - 1."""
    for start, stop in _chunks(n_faces):
        ids = range(start + 1, stop + 1)
        connection.execute(insert(Sighting), [
            {"id": i, "uploaded_at": WHEN + dt.timedelta(seconds=i), "app": "tips",
             "sha256": f"{i:064x}", "path": f"sightings/{i}.jpg", "width": 640,
             "height": 480} for i in ids])
        connection.execute(insert(Face), [
            {"id": first_face + i - 1, "sighting_id": i, **FACE} for i in ids])


def _fill_candidates(connection: Connection, n_candidates: int, n_cases: int, pending: float,
                     rng: np.random.Generator) -> None:
    """Candidate k is rank k % PER_FACE of sighting face k // PER_FACE (0-based), whose
    PER_FACE cases are distinct (one stride apart), the faces' spread by a prime."""
    stride = n_cases // PER_FACE
    statuses = (CandidateStatus.PENDING, *OTHER)
    for start, stop in _chunks(n_candidates):
        k = np.arange(start, stop)
        face, rank = k // PER_FACE, k % PER_FACE
        case = (face * 7919 + rank * stride) % n_cases + 1
        distance = rng.uniform(0.2, 0.8, len(k))
        status = np.where(rng.random(len(k)) < pending, 0, rng.integers(1, 4, len(k)))
        connection.execute(insert(Candidate), [
            {"id": int(k[j]) + 1, "sighting_face_id": n_cases + int(face[j]) + 1,
             "case_id": int(case[j]), "case_face_id": int(case[j]),
             "distance": float(distance[j]), "rank": int(rank[j]) + 1, "model_id": "m",
             "threshold": THRESHOLD, "status": statuses[int(status[j])], "created_at": WHEN}
            for j in range(len(k))])


def _chunks(n: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, CHUNK):
        yield start, min(start + CHUNK, n)


def set_revision(engine: Engine, after: bool) -> float:
    """Migrates to AFTER or back to BEFORE; returns the seconds it took."""
    begun = time.perf_counter()
    if after:
        migrate(engine, AFTER)
    else:
        command.downgrade(alembic_config(engine), BEFORE)
    return time.perf_counter() - begun


# --- the pages -------------------------------------------------------------------------------


def pages(engine: Engine, deep: int, case_id: int) -> dict[str, Callable[[Session], Any]]:
    queue = ReviewQuery()
    with Session(engine) as session:
        key = session.execute(
            select(Candidate.distance, Candidate.id)
            .where(Candidate.status == CandidateStatus.PENDING,
                   Candidate.distance <= Candidate.threshold)
            .order_by(Candidate.distance, Candidate.id).offset(deep - 1).limit(1)).one_or_none()
    if key is None:
        sys.exit(f"--deep {deep} is past the end of the queue: ask for more --candidates")
    after = Cursor(float(key.distance), int(key.id))
    case = ReviewQuery(case_id=case_id)
    matches = ReviewQuery(statuses=(CandidateStatus.CONFIRMED,), under_threshold=False,
                          case_id=case_id, order="recent")
    return {
        "first page": lambda s: review_rows(s, queue),
        f"after {deep} rows": lambda s: review_rows(s, queue, after=after),
        f"case {case_id}": lambda s: review_rows(s, case),
        f"case {case_id} matches": lambda s: review_rows(s, matches),
    }


def time_page(engine: Engine, page: Callable[[Session], Any], calls: int) -> float:
    """Median ms of `calls` reads of a page, each in a fresh session."""
    times = []
    for _ in range(calls):
        with Session(engine) as session:
            begun = time.perf_counter()
            rows = page(session)
            times.append((time.perf_counter() - begun) * 1000)
        if not rows:
            raise RuntimeError("an empty page: make the store larger")
    return statistics.median(times)


def plan(engine: Engine, page: Callable[[Session], Any]) -> str:
    """The database's plan of the page's statement (captured as it runs), in one line."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with Session(engine) as session:
            page(session)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = seen[-1]
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            ("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (COSTS OFF) ") + statement,
            parameters).all()
    lines = [str(row[-1]).strip().removeprefix("->").strip() for row in rows]
    if sqlite:  # how candidates are read, and whether a sort follows
        return "; ".join(line for line in lines if "candidates" in line or "B-TREE" in line)
    return "; ".join(line for line in lines
                     if ("Scan" in line and "candidates" in line) or line == "Sort")


def run(engine: Engine, args: argparse.Namespace, case_id: int) -> dict[str, Any]:
    queries = pages(engine, args.deep, case_id)
    runs: list[dict[tuple[str, bool], float]] = []
    upgrades: list[float] = []
    for _ in range(args.repeats):
        figures: dict[tuple[str, bool], float] = {}
        for after in (False, True):
            seconds = set_revision(engine, after)
            if after:
                upgrades.append(seconds)
            for name, page in queries.items():
                with Session(engine) as session:
                    page(session)  # warms the caches
                figures[name, after] = time_page(engine, page, args.calls)
        runs.append(figures)
    plans: dict[tuple[str, bool], str] = {}
    for after in (False, True):
        set_revision(engine, after)
        for name, page in queries.items():
            plans[name, after] = plan(engine, page)
    return {
        "pages": [{"page": name,
                   "ms_before": statistics.median(r[name, False] for r in runs),
                   "ms_after": statistics.median(r[name, True] for r in runs),
                   "plan_before": plans[name, False], "plan_after": plans[name, True]}
                  for name in queries],
        "upgrade_s": statistics.median(upgrades),
    }


# --- the report ------------------------------------------------------------------------------


def machine(engine: Engine) -> str:
    with engine.connect() as connection:
        version = connection.exec_driver_sql(
            "SELECT sqlite_version()" if engine.dialect.name == "sqlite"
            else "SHOW server_version").scalar()
    return (f"{describe_machine()}, SQLAlchemy {sqlalchemy.__version__}, "
            f"{engine.dialect.name} {version}")


def table(report: dict[str, Any]) -> str:
    lines = [report["machine"],
             f"{report['candidates']} candidates ({report['pending']:.0%} pending) of "
             f"{report['cases']} cases; p50 ms of a page, medians of {report['repeats']} runs x "
             f"{report['calls']} calls; upgrade {BEFORE} -> {AFTER} took "
             f"{report['upgrade_s']:.1f} s",
             f"page                  at {BEFORE}  at {AFTER}",
             *(f"{p['page']:20} {p['ms_before']:8.2f} {p['ms_after']:8.2f}"
               for p in report["pages"]),
             "plans:"]
    for p in report["pages"]:
        lines += [f"  {p['page']} at {BEFORE}: {p['plan_before']}",
                  f"  {p['page']} at {AFTER}: {p['plan_after']}"]
    return "\n".join(lines)


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", type=int, default=1_000_000)
    parser.add_argument("--pending", type=float, default=0.9, help="share of pending rows")
    parser.add_argument("--deep", type=int, default=10_000,
                        help="queue rows before the deep page")
    parser.add_argument("--repeats", type=int, default=3, help="runs; medians")
    parser.add_argument("--calls", type=int, default=3, help="reads of each page per run")
    parser.add_argument("--database-url", help="a PostgreSQL server (default: SQLite)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with throwaway_store(args.database_url) as engine:
        about = machine(engine)
        log(about)
        begun = time.perf_counter()
        n_cases = fill(engine, args.candidates, args.pending, args.seed)
        log(f"store filled: {args.candidates} candidates ({time.perf_counter() - begun:.0f} s)")
        report = {"machine": about, "candidates": args.candidates, "pending": args.pending,
                  "cases": n_cases, "repeats": args.repeats, "calls": args.calls,
                  **run(engine, args, case_id=1)}
    print(json.dumps(report, indent=1) if args.json else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
