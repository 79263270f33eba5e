"""The CUDA path (`MATCHER_DEVICE=cuda`) against the CPU path, on the same dev photos.

The pipeline is loaded twice from one reading of the settings, on the CPU and on the GPU, and
both process the same LFW-dev and FG-NET-dev photos. Figures:
* parity: the faces each device finds, CPU faces matched to CUDA faces by box (IoU >=
  MATCH_IOU), the largest absolute difference of one descriptor value and the largest L2
  distance between the two descriptors of a matched face, and the boxes' largest IoU shortfall
  (1 - IoU; 0 is the same box);
* speed per device: ms per photo processed alone (p50, p99: what a sighting upload waits, the
  service embeds one photo per call) and photos/s processed in batches of `BATCH`, as the
  descriptor cache of the other benchmarks is computed. One warm-up call of each kind first
  (the CUDA context, the kernels picked for these shapes).
Descriptors come back to the host as numpy arrays, so each timed call includes the GPU's work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from matcher.bench.descriptors import BATCH, BENCH_OUT
from matcher.bench.embed import read
from matcher.bench.machine import describe_machine
from matcher.bench.uploads import percentile
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.embed.types import Face
from matcher.eval.box_map import iou, photo_paths
from matcher.wiring import load_pipeline

log = logging.getLogger(__name__)

MATCH_IOU = 0.5  # a CPU face and a CUDA face overlapping this much are the same face
NO_CUDA = "no CUDA device: torch.cuda.is_available() is False"


class NoCudaDevice(RuntimeError):
    """torch sees no CUDA device: there is no CUDA path to measure on this machine."""


def require_cuda() -> None:
    """Raises NoCudaDevice before anything is loaded, so the benchmark is safe to run anywhere."""
    import torch

    if not torch.cuda.is_available():
        raise NoCudaDevice(NO_CUDA)


def run(data: Path, photos: int = 200, batch: int = BATCH) -> dict[str, Any]:
    """Every figure, on `photos` dev photos of `data` (half LFW-dev, half FG-NET-dev), with the
    model the MATCHER_* settings choose (the default one unless they say otherwise)."""
    require_cuda()
    import torch

    settings = Settings(data_dir=BENCH_OUT)  # its weight cache
    # MATCHER_DEVICE=cuda:1 picks the GPU; any other value measures the first one.
    gpu = settings.device if settings.device.startswith("cuda") else "cuda"
    paths = (photo_paths(data, "lfw-dev", photos - photos // 2)
             + photo_paths(data, "fgnet-dev", photos // 2))
    images = [read(path) for path in paths]
    speed: dict[str, dict[str, float]] = {}
    found: dict[str, list[list[Face]]] = {}
    model_id = ""
    for name, device in (("cpu", "cpu"), ("cuda", gpu)):
        pipeline = load_pipeline(settings.model_copy(update={"device": device}))
        model_id = pipeline.model_id
        log.info("%s (%s): %d photos", name, device, len(images))
        found[name], speed[name] = measure(pipeline, images, batch)
    return {
        "machine": f"{describe_machine()}; torch {torch.__version__}, "
        f"{settings.threads} torch threads",
        "gpu": f"{torch.cuda.get_device_name(torch.device(gpu))} ({gpu}), "
        f"CUDA {torch.version.cuda}",
        "model_id": model_id,
        "photos": len(images),
        "batch": batch,
        "speed": speed,
        "parity": parity(found["cpu"], found["cuda"]),
    }


def measure(pipeline: FacePipeline, images: list[np.ndarray], batch: int
            ) -> tuple[list[list[Face]], dict[str, float]]:
    """The faces of each photo (from the batched pass) and the speed figures."""
    pipeline.process(images[:1])
    alone = []
    for image in images:
        start = time.perf_counter()
        pipeline.process([image])
        alone.append((time.perf_counter() - start) * 1000)
    pipeline.process(images[:batch])
    found: list[list[Face]] = []
    start = time.perf_counter()
    for first in range(0, len(images), batch):
        found.extend(pipeline.process(images[first : first + batch]))
    seconds = time.perf_counter() - start
    return found, {"faces": sum(len(faces) for faces in found),
                   "p50_ms": percentile(alone, 50), "p99_ms": percentile(alone, 99),
                   "photos_per_s": len(images) / seconds}


def parity(cpu: Sequence[Sequence[Face]], cuda: Sequence[Sequence[Face]]) -> dict[str, Any]:
    """How far the CUDA faces of each photo are from the CPU ones, matched by box. The largest
    differences are None when no face was matched."""
    matched = 0
    abs_diffs, distances, shortfalls = [], [], []
    for ours, theirs in zip(cpu, cuda, strict=True):
        if not ours or not theirs:
            continue
        a = np.array([face.box for face in ours], dtype=np.float64)
        b = np.array([face.box for face in theirs], dtype=np.float64)
        overlap = iou(np.repeat(a, len(b), axis=0), np.tile(b, (len(a), 1)))
        overlap = overlap.reshape(len(a), len(b))
        for i, j in enumerate(overlap.argmax(axis=1)):
            if overlap[i, j] < MATCH_IOU:
                continue
            matched += 1
            delta = ours[i].vector.astype(np.float64) - theirs[j].vector.astype(np.float64)
            abs_diffs.append(float(np.abs(delta).max()))
            distances.append(float(np.linalg.norm(delta)))
            shortfalls.append(1.0 - float(overlap[i, j]))
    return {
        "faces_cpu": sum(len(faces) for faces in cpu),
        "faces_cuda": sum(len(faces) for faces in cuda),
        "photos_with_other_counts": sum(len(a) != len(b) for a, b in zip(cpu, cuda, strict=True)),
        "matched": matched,
        "max_abs_diff": max(abs_diffs, default=None),
        "max_l2": max(distances, default=None),
        "max_iou_shortfall": max(shortfalls, default=None),
    }


def table(result: dict[str, Any]) -> str:
    """The figures in a few lines: the machine, speed per device, then parity."""
    par = result["parity"]
    lines = [f"machine: {result['machine']}", f"gpu: {result['gpu']}",
             f"model {result['model_id']}, {result['photos']} dev photos "
             f"(LFW-dev and FG-NET-dev), batches of {result['batch']}",
             "device | faces | p50 ms alone | p99 ms alone | photos/s batched"]
    for name, row in result["speed"].items():
        lines.append(f"{name:>6} | {row['faces']:5d} | {row['p50_ms']:12.1f} | "
                     f"{row['p99_ms']:12.1f} | {row['photos_per_s']:16.1f}")
    lines.append(f"faces matched by box (IoU >= {MATCH_IOU}): {par['matched']} "
                 f"(CPU {par['faces_cpu']}, CUDA {par['faces_cuda']}; photos with other "
                 f"counts: {par['photos_with_other_counts']})")
    lines.append("descriptors CPU vs CUDA: max abs diff " + _figure(par["max_abs_diff"])
                 + ", max L2 " + _figure(par["max_l2"])
                 + "; boxes: max IoU shortfall " + _figure(par["max_iou_shortfall"]))
    return "\n".join(lines)


def _figure(value: float | None) -> str:
    return "n/a (no face matched)" if value is None else f"{value:.2e}"
