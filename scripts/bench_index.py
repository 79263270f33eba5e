"""Benchmark the face index kinds at 10k / 100k / 1M synthetic faces shaped like real ones.

    .venv/bin/python scripts/bench_index.py [--n 1000000] [--json] [--threads 2]

Synthetic faces come from a Gaussian fitted to real dlib descriptors (matcher.bench.synthetic).
The descriptors of ../shared/data (lfw-dev + fgnet-dev) are computed once with the face
pipeline and cached in bench-out/descriptors.npz (or pass --descriptors FILE.npz holding
`vectors` and `identities`). Index knobs come from MATCHER_INDEX_* settings.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import platform
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from matcher.bench import index as bench
from matcher.bench import synthetic
from matcher.config import Settings, get_settings
from matcher.index.kinds import IndexParams

REPO = Path(__file__).resolve().parent.parent
SIZES = (10_000, 100_000, 1_000_000)


def compute_descriptors(data_root: Path, out: Path, settings: Settings) -> None:
    """One descriptor per photo (its largest face) of lfw-dev and fgnet-dev, with identities."""
    from matcher.embed import load_pipeline
    from matcher.embed.image import load_image

    pipeline = load_pipeline(settings)
    vectors, identities = [], []
    for name in ("lfw-dev", "fgnet-dev"):
        with (data_root / name / "manifest.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        for start in range(0, len(rows), 16):
            batch = rows[start : start + 16]
            images = [load_image((data_root / name / row["path"]).read_bytes(),
                                 max_bytes=settings.max_image_bytes,
                                 max_pixels=settings.max_image_pixels) for row in batch]
            for row, faces in zip(batch, pipeline.process(images), strict=True):
                if faces:
                    face = max(faces, key=lambda f: f.box[2] - f.box[0])
                    vectors.append(face.vector)
                    identities.append(row["identity"])
            logging.info("%s: %d/%d photos", name, start + len(batch), len(rows))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, vectors=np.stack(vectors).astype(np.float32), identities=np.array(identities),
             model_id=np.array(pipeline.model_id))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, action="append", help="faces (repeatable); "
                        "default 10k, 100k and 1M")
    parser.add_argument("--json", action="store_true", help="one JSON object per size")
    parser.add_argument("--threads", type=int, help="FAISS threads (default: settings)")
    parser.add_argument("--kinds", default="flat,hnsw,ivfpq")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="latency runs; medians reported")
    parser.add_argument("--sweep", action="store_true",
                        help="also measure HNSW efSearch / IVF nprobe values (same build)")
    parser.add_argument("--descriptors", type=Path, default=REPO / "bench-out/descriptors.npz")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    if not args.descriptors.is_file():
        compute_descriptors(args.data, args.descriptors, settings)
    with np.load(args.descriptors, allow_pickle=False) as cached:
        model = synthetic.fit(cached["vectors"], cached["identities"])
    params = IndexParams.from_settings(settings)
    if args.threads:
        params = replace(params, threads=args.threads)
    for n in args.n or SIZES:
        report = bench.run(model, n, params, kinds=args.kinds.split(","), queries=args.queries,
                           repeats=args.repeats, sweep=args.sweep)
        report["machine"] = f"{platform.machine()}, {params.threads} FAISS threads"
        print(json.dumps(report) if args.json else _table(report), flush=True)
    return 0


def _table(report: dict) -> str:
    lines = [f"n={report['n']} owners={report['owners']} chosen={report['chosen']} "
             f"({report['machine']})",
             "kind   build_s  mem_MB   p50_ms  p99_ms  b64_p50  b64_p99  recall@10  planted1"]
    for kind, f in report["kinds"].items():
        lines.append(f"{kind:6} {f['build_s']:7.1f} {f['memory_mb']:7.0f} {f['p50_ms']:8.2f} "
                     f"{f['p99_ms']:7.2f} {f['batch64_p50_ms']:8.1f} {f['batch64_p99_ms']:8.1f} "
                     f"{f['recall_at_10']:10.4f} {f['planted_first']:9.3f}")
    for kind, rows in report.get("sweeps", {}).items():
        for row in rows:
            knob = next(iter(row))
            lines.append(f"  sweep {kind} {knob}={row[knob]}: p50 {row['p50_ms']:.2f} ms, "
                         f"p99 {row['p99_ms']:.2f} ms, recall@10 {row['recall_at_10']:.4f}, "
                         f"planted first {row['planted_first']:.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
