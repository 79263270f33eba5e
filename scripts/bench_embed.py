"""Benchmark of the face pipeline against dlib itself, on real photos of ../shared/data.

    .venv/bin/python scripts/bench_embed.py [--json] [--repeats 5] [--threads 2]

Descriptor throughput, detection time at three photo sizes, and the smallest face found: what
each figure is, in matcher/bench/embed.py. Needs the dev extras (dlib-bin) and the research
photos (MATCHER_TEST_DATA or ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from matcher.bench import embed
from matcher.eval.manifest import research_data_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=research_data_dir())
    args = parser.parse_args()
    result = embed.run(args.data, args.repeats, args.threads)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(result["machine"], file=sys.stderr)
    print(embed.table(result))


if __name__ == "__main__":
    main()
