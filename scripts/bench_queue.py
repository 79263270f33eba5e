"""Benchmark the investigators' review queue (matcher.store.review.review_rows) on a large
store, with and without the queue's indexes on candidates (revision 0008).

    .venv/bin/python scripts/bench_queue.py [--candidates 1000000] [--pending 0.9]
        [--deep 10000] [--repeats 3] [--calls 3] [--database-url URL] [--json]

A throwaway store (SQLite in a temp dir, or with --database-url a fresh database on that
PostgreSQL server, dropped afterwards) filled in bulk; four pages of the queue timed without
and with its indexes, with the plans chosen. The benchmark is matcher/bench/queue.py.
"""

from __future__ import annotations

import argparse
import json
import sys

from matcher.bench import queue
from matcher.bench.progress import show_progress


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
    show_progress()
    options = {name: value for name, value in vars(args).items() if name != "json"}
    try:
        report = queue.run(queue.QueueBench(**options))
    except queue.QueueTooShort as exc:
        sys.exit(str(exc))
    print(json.dumps(report, indent=1) if args.json else queue.table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
