"""Benchmark of the investigators' review queue (matcher.store.review.review_rows) on a large
store: each page read with the queue's two indexes (revision 0008: (status, false_match_rate,
distance_ratio, id) and (case_id, status, ...)) and without them, with the plans the database
chose.

The store (matcher.bench.bulk) is migrated to head by the project's own code and filled in
bulk. Pages of up to 50 rows, each read in a fresh session: the default queue's (pending,
under the threshold, most likely first) first page, its page after `deep` rows (cursor
computed beforehand) and one case's first page; and that case's confirmed matches, newest
sighting first. Each run times every page `calls` times (median) without the indexes (dropped),
then with them (created again, timed); the report has the medians of `repeats` runs.

Before revision 0008 the script compared revisions 0004 and 0005 by Alembic downgrade; today's
queries need the columns 0008 added, so the indexes are dropped and created in place instead.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy
from sqlalchemy import Engine, event, inspect
from sqlalchemy.orm import Session

from matcher.bench.bulk import fill_queue, throwaway_store
from matcher.bench.machine import describe_machine
from matcher.store.models import Base
from matcher.store.review import ReviewQuery, cursor_after, review_rows
from matcher.vocabulary import CandidateStatus

log = logging.getLogger(__name__)

QUEUE_INDEXES = ("ix_candidates_status_likelihood", "ix_candidates_case_id_status_likelihood")
Page = Callable[[Session], Any]


class QueueTooShort(ValueError):
    """The deep page lies past the end of the queue: the store needs more candidates."""


@dataclass(frozen=True)
class QueueBench:
    """What one run measures, with the defaults of the published figures (docs/store.md)."""

    candidates: int = 1_000_000
    pending: float = 0.9  # share of pending rows
    deep: int = 10_000  # queue rows before the deep page
    repeats: int = 3  # runs; medians
    calls: int = 3  # reads of each page per run
    database_url: str | None = None  # a PostgreSQL server (default: SQLite)
    seed: int = 0


def run(bench: QueueBench) -> dict[str, Any]:
    """One benchmark in a throwaway store: fill, then time the pages without and with the
    queue's indexes."""
    with throwaway_store(bench.database_url) as engine:
        about = machine(engine)
        log.info(about)
        begun = time.perf_counter()
        n_cases = fill_queue(engine, bench.candidates, bench.pending, bench.seed)
        log.info("store filled: %d candidates (%.0f s)", bench.candidates,
                 time.perf_counter() - begun)
        return {"machine": about, "candidates": bench.candidates, "pending": bench.pending,
                "cases": n_cases, "repeats": bench.repeats, "calls": bench.calls,
                **time_pages(engine, bench, case_id=1)}


def time_pages(engine: Engine, bench: QueueBench, case_id: int) -> dict[str, Any]:
    queries = pages(engine, bench.deep, case_id)
    runs: list[dict[tuple[str, bool], float]] = []
    builds: list[float] = []
    for _ in range(bench.repeats):
        figures: dict[tuple[str, bool], float] = {}
        for indexed in (False, True):
            seconds = set_queue_indexes(engine, indexed)
            if indexed:
                builds.append(seconds)
            for name, page in queries.items():
                with Session(engine) as session:
                    page(session)  # warms the caches
                figures[name, indexed] = time_page(engine, page, bench.calls)
        runs.append(figures)
    plans: dict[tuple[str, bool], str] = {}
    for indexed in (False, True):
        set_queue_indexes(engine, indexed)
        for name, page in queries.items():
            plans[name, indexed] = plan(engine, page)
    return {
        "pages": [{"page": name,
                   "ms_without": statistics.median(r[name, False] for r in runs),
                   "ms_with": statistics.median(r[name, True] for r in runs),
                   "plan_without": plans[name, False], "plan_with": plans[name, True]}
                  for name in queries],
        "index_build_s": statistics.median(builds),
    }


def set_queue_indexes(engine: Engine, present: bool) -> float:
    """Creates the queue's indexes (as revision 0008 does) or drops them; returns the seconds
    it took. Nothing happens to an index already as wanted."""
    begun = time.perf_counter()
    existing = {index["name"] for index in inspect(engine).get_indexes("candidates")}
    with engine.begin() as connection:
        for index in Base.metadata.tables["candidates"].indexes:
            if index.name not in QUEUE_INDEXES or (index.name in existing) == present:
                continue
            if present:
                index.create(connection)
            else:
                index.drop(connection)
    if engine.dialect.name == "postgresql" and present:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE candidates")
    return time.perf_counter() - begun


def pages(engine: Engine, deep: int, case_id: int) -> dict[str, Page]:
    """The pages timed, by name. The deep page's cursor is the queue's own, read through
    `review_rows` (with the indexes, before the runs)."""
    queue = ReviewQuery()
    set_queue_indexes(engine, True)
    with Session(engine) as session:
        rows = review_rows(session, queue, limit=deep)
        if len(rows) < deep:
            raise QueueTooShort(f"--deep {deep} is past the end of the queue ({len(rows)} "
                                "rows): ask for more --candidates")
        after = cursor_after(rows[-1], "distance")
    case = ReviewQuery(case_id=case_id)
    matches = ReviewQuery(statuses=(CandidateStatus.CONFIRMED,), under_threshold=False,
                          case_id=case_id, order="recent")
    return {
        "first page": lambda s: review_rows(s, queue),
        f"after {deep} rows": lambda s: review_rows(s, queue, after=after),
        f"case {case_id}": lambda s: review_rows(s, case),
        f"case {case_id} matches": lambda s: review_rows(s, matches),
    }


def time_page(engine: Engine, page: Page, calls: int) -> float:
    """Median ms of `calls` reads of a page, each in a fresh session."""
    times = []
    for _ in range(calls):
        with Session(engine) as session:
            begun = time.perf_counter()
            rows = page(session)
            times.append((time.perf_counter() - begun) * 1000)
        if not rows:
            raise QueueTooShort("an empty page: make the store larger")
    return statistics.median(times)


def plan(engine: Engine, page: Page) -> str:
    """The database's plan of the page's last statement (captured as it runs), in one line."""
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


def machine(engine: Engine) -> str:
    with engine.connect() as connection:
        version = connection.exec_driver_sql(
            "SELECT sqlite_version()" if engine.dialect.name == "sqlite"
            else "SHOW server_version").scalar()
    return (f"{describe_machine()}, SQLAlchemy {sqlalchemy.__version__}, "
            f"{engine.dialect.name} {version}")


def table(report: dict[str, Any]) -> str:
    """The report as the table docs/store.md quotes, then the plans."""
    lines = [report["machine"],
             f"{report['candidates']} candidates ({report['pending']:.0%} pending) of "
             f"{report['cases']} cases; p50 ms of a page, medians of {report['repeats']} runs x "
             f"{report['calls']} calls; creating the queue's indexes took "
             f"{report['index_build_s']:.1f} s",
             "page                  without  with the queue's indexes",
             *(f"{p['page']:20} {p['ms_without']:8.2f} {p['ms_with']:8.2f}"
               for p in report["pages"]),
             "plans:"]
    for p in report["pages"]:
        lines += [f"  {p['page']} without: {p['plan_without']}",
                  f"  {p['page']} with: {p['plan_with']}"]
    return "\n".join(lines)
