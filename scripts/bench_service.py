"""End-to-end benchmark of the service: sighting upload -> candidates stored, on a live server.

    .venv/bin/python scripts/bench_service.py [--faces 100000] [--clients 8] [--duration 30]
        [--sequential 40] [--repeats 3] [--processes N --database-url URL] [--json]
    .venv/bin/python scripts/bench_service.py --stages [--repeats 15]

A store of --faces synthetic case faces and --people real cases, `matcher serve` on it, phone
photos uploaded one at a time then by --clients at once, and every acknowledged sighting read
back; --stages times the same photos in this process, stage by stage. The benchmark is
matcher/bench/service.py (what each step does is there). Needs the dev extras (httpx) and the
research photos (MATCHER_TEST_DATA or ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from matcher.bench import service
from matcher.bench.progress import show_progress
from matcher.eval.manifest import research_data_dir


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
    parser.add_argument("--processes", type=int, default=1, help="servers on one store")
    parser.add_argument("--database-url", help="PostgreSQL server (default: SQLite)")
    args = parser.parse_args(argv)
    show_progress()
    # A terminated benchmark unwinds like an interrupted one: the server stops, the dir goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    options = {name: value for name, value in vars(args).items() if name != "json"}
    report = service.run(service.ServiceBench(**options))
    print(json.dumps(report, indent=1) if args.json else service.table(report))
    return 0 if not report.get("problems") else 1


if __name__ == "__main__":
    sys.exit(main())
