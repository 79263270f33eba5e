"""Where investigators fetch pictures: the URLs the API hands out, and how they answer."""

from __future__ import annotations

from typing import Any

from fastapi import Response

PREFIX = "/v1"
JPEG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/jpeg": {}}}}
# Pictures of children: no browser or proxy may keep a copy.
NO_STORE = {"Cache-Control": "no-store"}


def jpeg(data: bytes) -> Response:
    return Response(data, media_type="image/jpeg", headers=NO_STORE)


def crop_url(face_id: int) -> str:
    return f"{PREFIX}/faces/{face_id}/crop"


def case_photo_url(case_id: int, photo_id: int) -> str:
    return f"{PREFIX}/cases/{case_id}/photos/{photo_id}/image"


def alert_photo_url(case_id: int, photo_id: int) -> str:
    return f"{PREFIX}/alerts/{case_id}/photos/{photo_id}"


def sighting_photo_url(sighting_id: int) -> str:
    return f"{PREFIX}/sightings/{sighting_id}/photo"
