"""Benchmark of the face pipeline against dlib itself, on real photos of ../shared/data.

    .venv/bin/python scripts/bench_embed.py [--json] [--repeats 5] [--threads 2]

Figures (medians over --repeats runs):
* descriptor throughput (faces/s): our torch ResNet at batch 1 and 32 vs dlib's
  `compute_face_descriptor` on the same 150x150 chips (dlib-bin, single-threaded, no BLAS);
* detection ms per photo at 640 px, 1280 px and full size (a 4032x3024 "phone photo": a grid of
  12 real photos upscaled) for our default detector (YuNet in torch), our torch port of dlib's
  mmod, and dlib's own mmod. dlib's mmod at full size takes minutes, so it runs once there;
* the smallest face found: real faces pasted at decreasing widths into a 1280-px and a 4032-px
  photo, detected with the default settings and in small-faces mode.
Needs the dev extras (dlib-bin) and the research photos (MATCHER_TEST_DATA or ../shared/data).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matcher  # noqa: F401  sets OMP_WAIT_POLICY before torch loads libgomp

# isort: split
import dlib
import numpy as np
import torch
from PIL import Image as PILImage

from matcher.config import Settings
from matcher.embed import FacePipeline, load_pipeline
from matcher.embed.image import load_image
from matcher.embed.mmod import MMODDetector
from matcher.embed.resnet import embed_chips
from matcher.embed.weights import DLIB_MMOD, DLIB_RESNET
from matcher.eval.manifest import research_data_dir

REPO = Path(__file__).resolve().parent.parent
FULL_SIZE = (4032, 3024)
FACE_WIDTHS = (12, 16, 20, 24, 28, 32, 40, 48, 64, 80, 100)


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
    chips = []
    for image, detections in zip(images, pipeline.detect(images), strict=True):
        best = sorted(detections, key=lambda d: -d.score)[:1]
        landmarks = pipeline.embedder.landmarks(image, best, pipeline.detector)
        chips.append(pipeline.embedder.chips(image, landmarks))
    batch = np.concatenate(chips)[:64]
    net = pipeline.embedder._net  # type: ignore[attr-defined]
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
    cnn = dlib.cnn_face_detection_model_v1(str(DLIB_MMOD.path()))
    sizes = {"640": resize(photo, 640), "1280": resize(photo, 1280), "full": photo}
    result = {}
    for name, image in sizes.items():
        # dlib's mmod takes minutes on a 12 MP photo: one timed run there, no warm-up.
        slow_repeats, warm_up = (1, False) if name == "full" else (repeats, True)
        row = {
            "torch": median_time(lambda i=image: pipeline.detector.detect([i]), repeats),
            "mmod_torch": median_time(lambda i=image: mmod.detect([i]), slow_repeats, warm_up),
        }
        found: list[int] = []
        row["dlib"] = median_time(
            lambda i=image, f=found: f.append(len(cnn(i, 0))), slow_repeats, warm_up
        )
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
        settings.model_copy(update={"small_faces": True}), pipeline.detector, pipeline.embedder
    )
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=research_data_dir())
    args = parser.parse_args()

    # dlib's model: the figures compare the port with dlib itself.
    settings = Settings(data_dir=REPO / "bench-out", threads=args.threads, embedder="dlib")
    pipeline = load_pipeline(settings)
    mmod = MMODDetector.load(settings.cache_dir)
    images = [read(p) for p in lfw_paths(args.data, 64)]
    throughput = descriptor_throughput(pipeline, images, args.repeats)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} torch threads; dlib {dlib.__version__} single-threaded",
        "repeats": args.repeats,
        "faces_per_s": throughput,
        "ratio_b32": throughput["torch_b32"] / throughput["dlib"],
        "ratio_b1": throughput["torch_b1"] / throughput["dlib"],
        "detect_ms": detection_ms(pipeline, mmod, phone_photo(images), args.repeats),
        "smallest_face": smallest_faces(settings, pipeline, images[12:40]),
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(result["machine"], file=sys.stderr)
    fps = result["faces_per_s"]
    print("descriptor faces/s: torch b1 {torch_b1:.1f}, torch b32 {torch_b32:.1f}, "
          "dlib {dlib:.1f}".format(**fps))
    print(f"ratio b32/dlib {result['ratio_b32']:.1f}x, b1/dlib {result['ratio_b1']:.1f}x")
    print("detection ms per photo  | yunet (torch) | mmod (torch) | mmod (dlib) | faces y/d")
    for size, row in result["detect_ms"].items():
        print(f"{size:>23} | {row['torch']:13.1f} | {row['mmod_torch']:12.1f} | "
              f"{row['dlib']:11.1f} | {row['faces_torch']}/{row['faces_dlib']}")
    for name, row in result["smallest_face"].items():
        print(f"smallest face found {name}: {row['min_face_px']} px ({row['ms']:.0f} ms/photo)")


if __name__ == "__main__":
    main()
