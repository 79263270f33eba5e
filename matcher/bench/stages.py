"""The ingest stages of a sighting timed in this process, one at a time: decode, detect and
embed, re-encode, and the fsynced photo write, each on an upload nobody decoded before. Where the
live benchmark's time goes, without HTTP or a second process."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from matcher.bench.cpu import CpuMeter
from matcher.bench.descriptors import BENCH_OUT
from matcher.bench.phone import PhoneJpeg
from matcher.config import Settings


def stages(
    photos: list[PhoneJpeg], repeats: int, work: Path
) -> tuple[dict[str, float], dict[str, float]]:
    """Median ms per stage, single stream, each call on an upload nobody decoded before."""
    from matcher.embed.image import load_image
    from matcher.store.photos import encode_jpeg, store_photo
    from matcher.wiring import load_pipeline

    settings = Settings(data_dir=BENCH_OUT)  # its weight cache
    pipeline = load_pipeline(settings)
    decode = partial(load_image, max_bytes=settings.max_image_bytes,
                     max_pixels=settings.max_image_pixels)
    times: dict[str, list[float]] = {}

    def timed(name: str, run: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        result = run(*args)
        times.setdefault(name, []).append((time.perf_counter() - start) * 1000)
        return result

    meter = CpuMeter(())
    for number in range(repeats + 1):  # the first round warms up and is dropped
        if number == 1:
            meter.start()
        data = photos[number % len(photos)].variant(number)
        image = timed("decode (load_image)", decode, data)
        timed("detect + embed (pipeline.process)", pipeline.process, [image])
        timed("re-encode (encode_jpeg)", encode_jpeg, image)
        timed("store_photo (re-encode, hash, fsynced write)", store_photo, work, image)
        if number == 0:
            times.clear()
    wall, _, own, busy = meter.stop()
    return {name: statistics.median(values) for name, values in times.items()}, {
        "own_cores": own / wall, "others_cores": max(0.0, busy - own) / wall}
