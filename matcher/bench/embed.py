"""Benchmark of the face pipeline against dlib itself, on real photos of the research data.

Figures (medians over `repeats` runs):
* descriptor throughput (faces/s): our torch ResNet at batch 1 and 32 vs dlib's
  `compute_face_descriptor` on the same 150x150 chips (dlib-bin, single-threaded, no BLAS);
* detection ms per photo at 640 px, 1280 px and full size (a 4032x3024 "phone photo": a grid of
  12 real photos upscaled) for our default detector (YuNet in torch), our torch port of dlib's
  mmod, and dlib's own mmod. dlib's mmod at full size takes minutes, so it runs once there;
* the smallest face found: real faces pasted at decreasing widths into a 1280-px and a 4032-px
  photo, detected with the default settings and in small-faces mode.
dlib is the reference the ports are measured against: it comes with the dev extras only, and is
imported when a benchmark runs, never with the package.
"""

from __future__ import annotations

import csv
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from matcher.bench.descriptors import BENCH_OUT
from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.embed.embedder import DlibEmbedder
from matcher.embed.image import load_image
from matcher.embed.mmod import MMODDetector
from matcher.embed.resnet import embed_chips
from matcher.embed.weights import DLIB_MMOD, DLIB_RESNET
from matcher.wiring import load_pipeline

FULL_SIZE = (4032, 3024)
FACE_WIDTHS = (12, 16, 20, 24, 28, 32, 40, 48, 64, 80, 100)


def run(data: Path, repeats: int = 5, threads: int = 2) -> dict[str, Any]:
    """Every figure, on 64 LFW-dev photos of `data`, with dlib's model (the figures compare the
    port with dlib itself) on `threads` torch threads."""
    import dlib
    import torch

    settings = Settings(data_dir=BENCH_OUT, threads=threads, embedder="dlib")
    pipeline = load_pipeline(settings)
    mmod = MMODDetector.load(settings.cache_dir)
    images = [read(p) for p in lfw_paths(data, 64)]
    throughput = descriptor_throughput(pipeline, images, repeats)
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{threads} torch threads; dlib {dlib.__version__} single-threaded",
        "repeats": repeats,
        "faces_per_s": throughput,
        "ratio_b32": throughput["torch_b32"] / throughput["dlib"],
        "ratio_b1": throughput["torch_b1"] / throughput["dlib"],
        "detect_ms": detection_ms(pipeline, mmod, phone_photo(images), repeats),
        "smallest_face": smallest_faces(settings, pipeline, images[12:40]),
    }


def table(result: dict[str, Any]) -> str:
    """The figures as the lines the model cards quote."""
    fps = result["faces_per_s"]
    lines = ["descriptor faces/s: torch b1 {torch_b1:.1f}, torch b32 {torch_b32:.1f}, "
             "dlib {dlib:.1f}".format(**fps),
             f"ratio b32/dlib {result['ratio_b32']:.1f}x, b1/dlib {result['ratio_b1']:.1f}x",
             "detection ms per photo  | yunet (torch) | mmod (torch) | mmod (dlib) | faces y/d"]
    for size, row in result["detect_ms"].items():
        lines.append(f"{size:>23} | {row['torch']:13.1f} | {row['mmod_torch']:12.1f} | "
                     f"{row['dlib']:11.1f} | {row['faces_torch']}/{row['faces_dlib']}")
    for name, row in result["smallest_face"].items():
        lines.append(f"smallest face found {name}: {row['min_face_px']} px "
                     f"({row['ms']:.0f} ms/photo)")
    return "\n".join(lines)


def median_time(run: Callable[[], object], repeats: int, warm_up: bool = True) -> float:
    """Median wall seconds of `run` over `repeats` calls, after one warm-up call."""
    if warm_up:
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def lfw_paths(data: Path, count: int) -> list[Path]:
    with (data / "lfw-dev" / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    step = max(1, len(rows) // count)
    return [data / "lfw-dev" / row["path"] for row in rows[::step][:count]]


def read(path: Path) -> np.ndarray:
    return load_image(path.read_bytes(), max_bytes=10**8, max_pixels=10**8)


def resize(image: np.ndarray, longest: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = longest / max(height, width)
    size = (round(width * scale), round(height * scale))
    return np.asarray(PILImage.fromarray(image).resize(size, PILImage.Resampling.BILINEAR))


def descriptor_throughput(
    pipeline: FacePipeline, images: list[np.ndarray], repeats: int
) -> dict[str, float]:
    """Faces per second of our torch ResNet at batch 1 and 32, and of dlib's
    `compute_face_descriptor`, on the same chips of the photos' best faces."""
    import dlib

    embedder = pipeline.embedder
    if not isinstance(embedder, DlibEmbedder):
        raise TypeError("the descriptor figures compare dlib's model with dlib itself")
    chips = []
    for image, detections in zip(images, pipeline.detect(images), strict=True):
        best = sorted(detections, key=lambda d: -d.score)[:1]
        landmarks = embedder.landmarks(image, best, pipeline.detector)
        chips.append(embedder.chips(image, landmarks))
    batch = np.concatenate(chips)[:64]
    net = embedder._net
    recogniser = dlib.face_recognition_model_v1(str(DLIB_RESNET.path()))
    few = batch[:16]
    b1 = median_time(lambda: [embed_chips(net, c[None], 1) for c in few], repeats)
    b32 = median_time(lambda: embed_chips(net, batch, 32), repeats)
    ref = median_time(lambda: [recogniser.compute_face_descriptor(c) for c in few], repeats)
    return {"torch_b1": len(few) / b1, "torch_b32": len(batch) / b32, "dlib": len(few) / ref}


def phone_photo(images: list[np.ndarray]) -> np.ndarray:
    """A 4x3 grid of real photos, upscaled to 4032x3024: 12 faces of about 400 px."""
    tiles = [resize(image, 250)[:250, :250] for image in images[:12]]
    rows = [np.concatenate(tiles[r * 4 : r * 4 + 4], axis=1) for r in range(3)]
    grid = np.concatenate(rows, axis=0)
    return np.asarray(PILImage.fromarray(grid).resize(FULL_SIZE, PILImage.Resampling.BICUBIC))


def detection_ms(
    pipeline: FacePipeline, mmod: MMODDetector, photo: np.ndarray, repeats: int
) -> dict[str, dict[str, float]]:
    """ms per photo at 640 px, 1280 px and full size of the configured detector, our port of
    mmod and dlib's own, with the faces each found."""
    import dlib

    cnn = dlib.cnn_face_detection_model_v1(str(DLIB_MMOD.path()))
    sizes = {"640": resize(photo, 640), "1280": resize(photo, 1280), "full": photo}
    result = {}
    for name, image in sizes.items():
        # dlib's mmod takes minutes on a 12 MP photo: one timed run there, no warm-up.
        slow_repeats, warm_up = (1, False) if name == "full" else (repeats, True)
        found: list[int] = []

        def dlib_mmod(image: np.ndarray = image, found: list[int] = found) -> None:
            found.append(len(cnn(image, 0)))

        row = {
            "torch": median_time(partial(pipeline.detector.detect, [image]), repeats),
            "mmod_torch": median_time(partial(mmod.detect, [image]), slow_repeats, warm_up),
            "dlib": median_time(dlib_mmod, slow_repeats, warm_up),
        }
        row["faces_torch"] = len(pipeline.detector.detect([image])[0])
        row["faces_dlib"] = found[-1]
        result[name] = {k: (v * 1000 if not k.startswith("faces") else v) for k, v in row.items()}
    return result


def smallest_faces(
    settings: Settings, pipeline: FacePipeline, images: list[np.ndarray]
) -> dict[str, Any]:
    """Smallest face width (px) at which >= 90% of 10 pasted faces are found, per setting."""
    faces = []
    for image, detections in zip(images, pipeline.detect(images), strict=True):
        if detections:
            left, top, right, bottom = max(detections, key=lambda d: d.score).box
            faces.append((image, right - left))
    faces = faces[:10]
    small_pipeline = FacePipeline(
        replace(pipeline.config, small_faces=True), pipeline.detector, pipeline.embedder)
    report: dict[str, Any] = {}
    for canvas_side in (1280, 4032):
        for mode, pipe in (("default", pipeline), ("small_faces", small_pipeline)):
            found_at = None
            timing = 0.0
            for width in FACE_WIDTHS:
                canvas = np.full((canvas_side * 3 // 4, canvas_side, 3), 127, np.uint8)
                for k, (image, face_width) in enumerate(faces):
                    scale = width / face_width
                    side = max(8, round(image.shape[1] * scale))
                    tile = np.asarray(PILImage.fromarray(image).resize((side, side)))
                    x = (k + 1) * canvas_side // 12 - side // 2
                    canvas[canvas_side // 3 : canvas_side // 3 + side, x : x + side] = tile
                start = time.perf_counter()
                detections = pipe.detect([canvas])[0]
                timing = max(timing, time.perf_counter() - start)
                if len(detections) >= 0.9 * len(faces):
                    found_at = width
                    break
            report[f"{canvas_side}px_{mode}"] = {"min_face_px": found_at, "ms": timing * 1000}
    return report
