"""Builders of store test data: cases, faces, photos."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from matcher.store import NewCase, NewFace

MODEL = "dlib-resnet-v1"


def new_case(name: str = "Ana", **changes: object) -> NewCase:
    values: dict[str, object] = {
        "category": "child", "name": name, "missing_since": dt.date(2024, 5, 1),
        "sex": "female", "date_of_birth": dt.date(2015, 3, 2),
        "last_seen_place": "Central station", "last_seen_lat": 52.52, "last_seen_lon": 13.405,
        "description": "red jacket", "public_fields": ["name", "photos"],
    }
    values.update(changes)
    return NewCase(**values)  # type: ignore[arg-type]


def vector(seed: int, dim: int = 128) -> NDArray[np.float32]:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def new_face(seed: int, model_id: str = MODEL, dim: int = 128, **changes: object) -> NewFace:
    values: dict[str, object] = {
        "box": (10.5, 20.0, 110.0, 140.25),
        "landmarks": np.arange(10, dtype=np.float32).reshape(5, 2) + seed,
        "score": 0.97, "size_px": 99.5, "sharpness": 33.0,
        "vector": vector(seed, dim), "model_id": model_id,
    }
    values.update(changes)
    return NewFace(**values)  # type: ignore[arg-type]


def pixels(seed: int, height: int = 48, width: int = 64) -> NDArray[np.uint8]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def jpeg_with_gps(seed: int = 0, image: Image.Image | None = None) -> bytes:
    """A JPEG carrying EXIF with GPS coordinates, a camera model and an orientation tag (of
    random pixels, or of `image`)."""
    image = image if image is not None else Image.fromarray(pixels(seed))
    exif = Image.Exif()
    exif[0x0110] = "Phone X"  # Model
    exif[0x0112] = 1  # Orientation
    gps = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 18.0)}
    exif[0x8825] = gps  # GPSInfo IFD
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, comment=b"secret note")
    return out.getvalue()
