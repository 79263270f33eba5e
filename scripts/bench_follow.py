"""Several serving processes on one store: how long a case photo committed through one takes to
be searchable on the others (issue 23; target p99 <= 1 s).

    .venv/bin/python scripts/bench_follow.py [--processes 3] [--samples 30]
        [--database-url postgresql://user@host/postgres] [--json]

The benchmark is matcher/bench/follow.py. Needs the research photos (MATCHER_TEST_DATA or
../shared/data); with --database-url, a role that may create databases (a throwaway one is
made and dropped).
"""

from __future__ import annotations

import argparse
import json
import sys

from matcher.bench import follow
from matcher.bench.progress import show_progress


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--database-url", help="a PostgreSQL server (default: SQLite)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    show_progress()
    bench = follow.FollowBench(processes=args.processes, samples=args.samples,
                               database_url=args.database_url)
    report = follow.run(bench)
    print(json.dumps(report, indent=1, default=str) if args.json else follow.table(report))
    return 0 if report["missed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
