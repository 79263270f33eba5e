"""The benchmark of the index kinds, on synthetic faces, and its script."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from matcher.bench import index as bench
from matcher.bench.synthetic import FaceModel, collection
from matcher.index import IndexParams

REPO = Path(__file__).resolve().parents[2]


def test_bench_reports_every_kind(face_model: FaceModel) -> None:
    report = bench.run(face_model, 3_000, IndexParams(threads=1, ivf_nlist=32, pq_m=16),
                       queries=60, singles=5, batches=1, repeats=1)
    assert report["n"] == 3_000 and report["chosen"] == "flat"
    flat = report["kinds"]["flat"]
    assert flat["recall_at_10"] == 1.0 and flat["planted_first"] > 0.9
    for figures in report["kinds"].values():
        assert {"p50_ms", "p99_ms", "batch64_p50_ms", "build_s", "memory_mb"} <= figures.keys()
        assert 0.0 <= figures["recall_at_10"] <= 1.0


def test_bench_script_prints_json(face_model: FaceModel, tmp_path: Path, capsys) -> None:
    data = collection(face_model, 1_500, seed=6)
    descriptors = tmp_path / "descriptors.npz"
    np.savez(descriptors, vectors=data.vectors, identities=data.owners.astype(str))
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import bench_index
    finally:
        sys.path.remove(str(REPO / "scripts"))
    bench_index.main(["--n", "2000", "--json", "--kinds", "flat,hnsw", "--queries", "64",
                      "--repeats", "1", "--descriptors", str(descriptors), "--threads", "1"])
    report = json.loads(capsys.readouterr().out.strip())
    assert report["n"] == 2000 and set(report["kinds"]) == {"flat", "hnsw"}
    assert report["kinds"]["flat"]["recall_at_10"] == 1.0
