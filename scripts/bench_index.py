"""Benchmark the face index kinds at 10k / 100k / 1M synthetic faces shaped like real ones.

    .venv/bin/python scripts/bench_index.py [--n 1000000] [--json] [--threads 2]

Synthetic faces come from a Gaussian fitted to real descriptors of the served model (the
settings' model: MATCHER_EMBEDDER..., the default unless set; matcher.bench.synthetic), so the
figures hold for its dimension and scale. The descriptors of ../shared/data (lfw-dev +
fgnet-dev) are computed once with the face pipeline and cached in bench-out/ under the model id
(or pass --descriptors FILE.npz holding `vectors` and `identities`). Index knobs come from
MATCHER_INDEX_* settings. The kinds measured are `auto` (what the service builds: the size's
kind after its self-check) and each kind forced. The benchmark itself is
matcher/bench/index.py.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import replace
from pathlib import Path

from matcher.bench import index
from matcher.bench.descriptors import cached_face_model, descriptors_file
from matcher.bench.progress import show_progress
from matcher.config import get_settings
from matcher.eval.manifest import research_data_dir
from matcher.wiring import index_params, load_pipeline

SIZES = (10_000, 100_000, 1_000_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, action="append", help="faces (repeatable); "
                        "default 10k, 100k and 1M")
    parser.add_argument("--json", action="store_true", help="one JSON object per size")
    parser.add_argument("--threads", type=int, help="FAISS threads (default: settings)")
    parser.add_argument("--kinds", default="auto,flat,hnsw,ivfpq")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="latency runs; medians reported")
    parser.add_argument("--sweep", action="store_true",
                        help="also measure HNSW efSearch / IVF nprobe values (same build)")
    parser.add_argument("--descriptors", type=Path,
                        help="default: the served model's, in bench-out/")
    parser.add_argument("--data", type=Path, default=research_data_dir())
    args = parser.parse_args(argv)
    show_progress()
    settings = get_settings()
    descriptors = args.descriptors or descriptors_file(load_pipeline(settings).model_id)
    model, model_id = cached_face_model(descriptors, args.data, settings)
    params = index_params(settings)
    if args.threads:
        params = replace(params, threads=args.threads)
    for n in args.n or SIZES:
        report = index.run(model, n, params, kinds=args.kinds.split(","), queries=args.queries,
                           repeats=args.repeats, sweep=args.sweep)
        report["machine"] = f"{platform.machine()}, {params.threads} FAISS threads"
        report["model"] = f"{model_id} ({model.dim}-d)"
        print(json.dumps(report) if args.json else index.table(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
