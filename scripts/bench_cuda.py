"""The CUDA path (MATCHER_DEVICE=cuda) against the CPU path, on a machine with a GPU.

    .venv/bin/python scripts/bench_cuda.py [--photos 200] [--json]

The configured model (MATCHER_* settings; the default model otherwise) loaded on the CPU and on
the GPU, on the same dev photos: faces found by each, the descriptors' and boxes' parity (max
abs diff, max L2, max IoU shortfall), ms per photo alone (p50/p99) and photos/s in batches.
What each figure is: matcher/bench/cuda.py. Needs the research photos (MATCHER_TEST_DATA or
../shared/data). Without a CUDA device it prints one line on stderr and exits 2, loading nothing;
no test or CI job runs it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from matcher.bench import cuda
from matcher.bench.progress import show_progress
from matcher.eval.manifest import research_data_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=200,
                        help="dev photos, half LFW-dev and half FG-NET-dev")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--data", type=Path, default=research_data_dir())
    args = parser.parse_args(argv)
    if args.photos < 1:
        parser.error("--photos must be at least 1")
    try:
        cuda.require_cuda()
    except cuda.NoCudaDevice as error:
        print(error, file=sys.stderr)
        return 2
    show_progress()
    result = cuda.run(args.data, args.photos)
    print(json.dumps(result, indent=1) if args.json else cuda.table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
