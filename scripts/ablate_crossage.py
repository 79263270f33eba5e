"""The ablation behind docs/accuracy-2026-11.md, "Tried and not kept": variants of the default
model on the cross-age dev protocol, each scored by the same index and metrics as `matcher eval`.

    .venv/bin/python scripts/ablate_crossage.py [--cache bench-out/ablation.npz] [--json]

The variants and how each is scored: matcher/eval/ablation/. Deterministic; about 20 minutes on
2 cores (x86_64), 5 with --cache after the first run. Needs the research photos
(MATCHER_TEST_DATA or ../shared/data) and the dev extras (OpenCV).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from matcher.bench.machine import describe_machine
from matcher.bench.progress import show_progress
from matcher.eval.ablation import StaleCache, ablate, table
from matcher.eval.manifest import research_data_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    data = research_data_dir()
    parser.add_argument("--cross-age", type=Path, default=data / "fgnet-dev/manifest.csv")
    parser.add_argument("--distractors", type=Path, default=data / "lfw-dev/manifest.csv")
    parser.add_argument("--cache", type=Path, help="npz of the descriptors, reused if present: "
                        "delete it after changing the pipeline")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    show_progress("matcher.eval.ablation")
    try:
        rows = ablate(args.cross_age, args.distractors, args.cache)
    except StaleCache as exc:
        sys.exit(str(exc))
    machine = describe_machine()
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}))
    else:
        print(f"machine: {machine}")
        print(table(rows))


if __name__ == "__main__":
    main()
