"""Benchmark of the index kinds on synthetic faces: build, memory, latency, recall, planted hits.

Ground truth is the exact (flat) index over the same faces. Figures are per kind:
build_s, memory_mb (serialized FAISS structures + id arrays), single-query and batch-64 latency
p50/p99 (ms, through FaceIndex.search: FAISS + owner ranking; medians over `repeats` runs),
filtered_p50_ms (single queries restricted to a random half of the owners by an IDSelector,
through an OwnerFilter prepared once, as the service keeps one per category),
recall_at_10 (owners in the top 10 shared with exact search, over planted and stranger
queries), planted_first (a fresh face of an indexed owner finds that owner first).
The kind `auto` is what the service builds at that size: the kind the size chooses, after its
self-check (matcher/index/selfcheck.py) set its knob or made it exact; its row names what
serves and the knob. With `sweep`, the approximate kinds are also measured at other search
settings (same build), so that one run at 1M faces can choose the defaults.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

from matcher.bench import synthetic
from matcher.index.collection import FaceIndex
from matcher.index.filters import OwnerFilter
from matcher.index.kinds import IndexParams, choose_kind

log = logging.getLogger(__name__)

K = 10
BATCH = 64
SWEEPS: dict[str, tuple[str, tuple[int, ...]]] = {
    "hnsw": ("hnsw_ef_search", (128, 256, 384, 512, 768, 1024, 1536, 2048, 3072)),
    "ivfpq": ("ivf_nprobe", (64, 128, 256, 512)),
}


def run(
    model: synthetic.FaceModel,
    n_faces: int,
    params: IndexParams,
    kinds: Sequence[str] = ("flat", "hnsw", "ivfpq"),
    queries: int = 1000,
    singles: int = 200,
    batches: int = 8,
    repeats: int = 3,
    seed: int = 0,
    sweep: bool = False,
) -> dict[str, Any]:
    data = synthetic.collection(model, n_faces, seed=seed)
    mated, truth = synthetic.planted(model, data, queries // 2, seed=seed + 1)
    probes = np.concatenate([mated, synthetic.strangers(model, queries - len(mated), seed + 2)])
    report: dict[str, Any] = {
        "n": n_faces,
        "owners": len(data.centres),
        "chosen": str(choose_kind(n_faces, params)),
        "threads": params.threads,
        "params": asdict(params),
        "kinds": {},
    }
    half = np.random.default_rng(seed + 3).permutation(len(data.centres))[: len(data.centres) // 2]
    owner_filter = OwnerFilter(half)
    exact: NDArray[np.int64] | None = None
    for kind in ("flat", *[k for k in kinds if k != "flat"]):
        index, figures = _build(kind, data, params)
        figures.update(_timings(index, probes, singles, batches, repeats, owner_filter))
        owners = index.search(probes, K).owners
        exact = owners if exact is None else exact
        figures.update(_quality(owners, exact, truth))
        if kind in kinds:
            report["kinds"][kind] = figures
        log.info("n=%d %s: %s", n_faces, kind, figures)
        if sweep and kind in SWEEPS and index.kind == kind:  # not one its check made exact
            report.setdefault("sweeps", {})[kind] = _sweep(index, kind, probes, exact, truth,
                                                          singles, repeats)
    return report


def _sweep(
    index: FaceIndex, kind: str, probes: NDArray[np.float32], exact: NDArray[np.int64],
    truth: NDArray[np.int64], singles: int, repeats: int,
) -> list[dict[str, Any]]:
    name, values = SWEEPS[kind]
    with index.read_state() as state:  # the knobs its self-check set win over index.params
        built, base = state, state.params or index.params
    rows = []
    for value in values:
        overrides: dict[str, Any] = {name: value}
        index.swap_state(replace(built, params=replace(base, **overrides)))
        runs = [_latencies(index, probes, 1, singles) for _ in range(repeats)]
        row = {name: value, "p50_ms": _median_of(runs, 50), "p99_ms": _median_of(runs, 99)}
        row.update(_quality(index.search(probes, K).owners, exact, truth))
        rows.append(row)
        log.info("sweep %s: %s", kind, row)
    index.swap_state(built)
    return rows


def _quality(
    owners: NDArray[np.int64], exact: NDArray[np.int64], truth: NDArray[np.int64]
) -> dict[str, float]:
    mated = len(truth)
    return {
        "recall_at_10": _recall(owners, exact),
        "recall_at_10_mated": _recall(owners[:mated], exact[:mated]),
        "planted_first": round(float(np.mean(owners[:mated, 0] == truth)), 4),
    }


def _build(
    kind: str, data: synthetic.Collection, params: IndexParams
) -> tuple[FaceIndex, dict[str, Any]]:
    start = time.perf_counter()
    index = FaceIndex.from_rows("synthetic", data.vectors.shape[1],
                                [(data.ids, data.owners, data.vectors)],
                                replace(params, kind=kind))
    build_s = time.perf_counter() - start
    check = index.self_check
    served = {"serving": str(index.kind), "knob": None if check is None else check.knob,
              "value": None if check is None else check.value,
              "check_s": None if check is None else round(check.seconds, 2)}
    with index.read_state() as state:
        structures = [state.index] + ([state.exact] if state.exact is not None else [])
        memory = sum(faiss.serialize_index(s).nbytes for s in structures)
        memory += sum(a.nbytes for a in (state.owners.ids, state.owners.owner_of,
                                          state.owners.by_owner, state.owners.faces_by_owner))
    return index, {"factory": index.factory, "build_s": round(build_s, 2),
                   "memory_mb": round(memory / 2**20, 1), **served}


def _timings(
    index: FaceIndex, probes: NDArray[np.float32], singles: int, batches: int, repeats: int,
    half: OwnerFilter,
) -> dict[str, float]:
    index.search(probes[:BATCH], K)  # warm up
    index.search(probes[:1], K, owners=half)  # prepares the filter for this index
    single, batch, filtered = [], [], []
    for _ in range(repeats):
        single.append(_latencies(index, probes, 1, singles))
        batch.append(_latencies(index, probes, BATCH, batches))
        filtered.append(_latencies(index, probes, 1, singles // 4, half))
    return {
        "p50_ms": _median_of(single, 50),
        "p99_ms": _median_of(single, 99),
        "batch64_p50_ms": _median_of(batch, 50),
        "batch64_p99_ms": _median_of(batch, 99),
        "filtered_p50_ms": _median_of(filtered, 50),
    }


def _latencies(
    index: FaceIndex, probes: NDArray[np.float32], size: int, count: int,
    owners: OwnerFilter | None = None,
) -> list[float]:
    times = []
    for i in range(max(count, 1)):
        start = (i * size) % max(len(probes) - size, 1)
        began = time.perf_counter()
        index.search(probes[start : start + size], K, owners=owners)
        times.append((time.perf_counter() - began) * 1000)
    return times


def _median_of(runs: list[list[float]], percentile: float) -> float:
    return round(float(np.median([np.percentile(run, percentile) for run in runs])), 3)


def _recall(found: NDArray[np.int64], exact: NDArray[np.int64]) -> float:
    """Mean share of each query's exact top-k owners that the kind also returned."""
    hits = (found[:, :, None] == exact[:, None, :]) & (exact[:, None, :] >= 0)
    wanted = np.maximum((exact >= 0).sum(axis=1), 1)
    return round(float(np.mean(hits.any(axis=1).sum(axis=1) / wanted)), 4)


def table(report: dict[str, Any]) -> str:
    """One size's report as the lines docs/index.md quotes: a row per kind, then the sweeps."""
    lines = [f"n={report['n']} owners={report['owners']} chosen={report['chosen']} "
             f"model={report.get('model')} ({report['machine']})",
             "kind   build_s  mem_MB   p50_ms  p99_ms  b64_p50  b64_p99  recall@10  planted1"]
    for kind, f in report["kinds"].items():
        kind = kind if kind == f["serving"] else f"{kind}:{f['serving']}"
        if f["knob"]:
            kind += f" {f['knob'].rsplit('_', 1)[-1]}={f['value']}"
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
