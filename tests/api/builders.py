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


def sky_png() -> bytes:
    """A photo with no face in it."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 140, 200)).save(out, format="PNG")
    return out.getvalue()
