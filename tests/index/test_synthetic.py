"""The synthetic face model and the benchmark that uses it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from matcher.index import IndexParams, InvalidVectors, bench
from matcher.index.synthetic import FaceModel, collection, fit, planted, strangers

REPO = Path(__file__).resolve().parents[2]


def test_fit_recovers_the_spreads(face_model: FaceModel) -> None:
    data = collection(face_model, 6_000, seed=3)
    model = fit(data.vectors, data.owners.astype(str))
    rng = np.random.default_rng(0)
    same = collection(model, 4_000, seed=4)
    first = np.flatnonzero(np.r_[True, same.owners[1:] != same.owners[:-1]])
    pairs = first[np.diff(np.r_[first, len(same.owners)]) > 1]
    same_d = np.linalg.norm(same.vectors[pairs] - same.vectors[pairs + 1], axis=1)
    other = rng.permutation(len(same.centres))
    moved = other != np.arange(len(other))
    apart = np.linalg.norm(same.centres - same.centres[other], axis=1)[moved]
    assert 0.38 < np.median(same_d) < 0.52  # the made-up model: ~0.45 within, ~0.8 between
    assert 0.6 < np.median(apart) < 0.85
    assert np.allclose(model.mean, face_model.mean, atol=0.02)
    with pytest.raises(InvalidVectors):
        fit(data.vectors[:3], np.array(["a", "b", "c"]))


def test_collection_is_seeded_and_well_formed(face_model: FaceModel) -> None:
    a, b = collection(face_model, 1_000, seed=5), collection(face_model, 1_000, seed=5)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert len(np.unique(a.ids)) == 1_000 and a.vectors.dtype == np.float32
    counts = np.bincount(a.owners)
    assert counts.min() >= 1 and counts.max() <= 5
    queries, owners = planted(face_model, a, 10)
    assert queries.shape == (10, 128) and owners.max() < len(a.centres)
    assert strangers(face_model, 4).shape == (4, 128)


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
