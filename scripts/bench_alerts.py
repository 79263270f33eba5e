"""Benchmark the alert feed tip apps read: answers by point at 10,000 active alerts.

    .venv/bin/python scripts/bench_alerts.py [--alerts 10000] [--resolved 1000] [--hours 6]
        [--points 300] [--limit 100] [--database-url URL] [--json]

A throwaway store (SQLite in a temp dir, or with --database-url a fresh database on that
PostgreSQL server, dropped afterwards) filled in bulk, served by a live `matcher serve`, and
timed over loopback HTTP. The benchmark is matcher/bench/alerts.py.
"""

from __future__ import annotations

import argparse
import json
import sys

from matcher.bench import alerts
from matcher.bench.progress import show_progress


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=10_000, help="active alerts")
    parser.add_argument("--resolved", type=int, default=1_000,
                        help="alerts resolved within the window")
    parser.add_argument("--hours", type=float, default=6.0,
                        help="issue times spread over the last this many hours")
    parser.add_argument("--points", type=int, default=300, help="answers timed of each kind")
    parser.add_argument("--limit", type=int, default=100, help="alerts per page")
    parser.add_argument("--database-url", help="a PostgreSQL server (default: SQLite)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    show_progress()
    options = {name: value for name, value in vars(args).items() if name != "json"}
    report = alerts.run(alerts.AlertBench(**options))
    print(json.dumps(report, indent=1) if args.json else alerts.table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
