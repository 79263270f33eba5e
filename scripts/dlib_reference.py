"""dlib's own pipeline on the cross-age dev protocol (issue 8's reference row), re-measured,
and what the reference's threshold allows: the rows behind docs/accuracy-2026-11.md,
"The reference, measured again".

    .venv/bin/python scripts/dlib_reference.py [--upsample 1] [--cache bench-out/dlib_ref.npz]
        [--json]

What is measured and how: matcher/eval/dlib_reference.py. Slow: about 30 minutes on 2 cores
(x86_64, deterministic); seconds again with --cache. Needs the dev extras (dlib-bin) and the
research photos (MATCHER_TEST_DATA or ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from matcher.bench.machine import describe_machine
from matcher.bench.progress import show_progress
from matcher.eval.dlib_reference import StaleReferenceCache, measure, table
from matcher.eval.manifest import research_data_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    data = research_data_dir()
    parser.add_argument("--cross-age", type=Path, default=data / "fgnet-dev/manifest.csv")
    parser.add_argument("--distractors", type=Path, default=data / "lfw-dev/manifest.csv")
    parser.add_argument("--upsample", type=int, default=1,
                        help="times dlib's detector upsamples each photo (face_recognition's "
                             "default: 1)")
    parser.add_argument("--cache", type=Path, help="npz of both models' descriptors, reused if "
                        "present: delete it after changing the pipeline")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    show_progress("matcher.eval.dlib_reference")
    try:
        rows = measure(args.cross_age, args.distractors, args.upsample, args.cache)
    except StaleReferenceCache as exc:
        sys.exit(str(exc))
    machine = describe_machine()
    if args.json:
        print(json.dumps({"machine": machine, "upsample": args.upsample, "rows": rows}))
    else:
        print(f"machine: {machine}; dlib's detector upsampling {args.upsample}x")
        print(table(rows))


if __name__ == "__main__":
    main()
