"""Request bodies and photos for the API tests."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from tests.data import Photo


def case_body(name: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "category": "child", "name": name, "sex": "unknown", "age_when_missing": 8,
        "missing_since": "2020-05-01", "last_seen_place": "Central station",
        "description": "internal note", "public_fields": ["name", "missing_since", "photos"],
    }
    body.update(overrides)
    return body


def photo_file(photo: Photo | Path) -> dict[str, tuple[str, bytes, str]]:
    path = photo.path if isinstance(photo, Photo) else photo
    return {"photo": (path.name, path.read_bytes(), "image/jpeg")}


def resaved(photo: Photo | Path | bytes, quality: int = 90) -> bytes:
    """The picture saved again as a JPEG: other pixels, so another sighting (the same photo
    sent again is one sighting with two reports, issue 22)."""
    data = photo if isinstance(photo, bytes) else (
        photo.path if isinstance(photo, Photo) else photo).read_bytes()
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def marked(photo: Photo | Path | bytes, n: int) -> bytes:
    """The picture with its top left 8 x 8 pixels in a shade of `n`, far from any face: the
    nth of as many different photos of one picture (the same photo sent again would be one
    sighting with several reports, issue 22)."""
    data = photo if isinstance(photo, bytes) else (
        photo.path if isinstance(photo, Photo) else photo).read_bytes()
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image.paste((n * 37 % 256, n * 91 % 256, n * 53 % 256), (0, 0, 8, 8))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95)
    return out.getvalue()


def sky_png(shade: int = 0) -> bytes:
    """A photo with no face in it; another `shade` is another photo (the same photo sent
    again is one sighting, issue 22)."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 140, 200 - 20 * shade)).save(out, format="PNG")
    return out.getvalue()
