"""Stored pictures for investigators: whole photos and face crops, every read audited.

A picture is asked for by the ids that own it (case and photo, sighting, face), and the pair
is checked: a photo id guessed from another case answers "not found", not the photo.
"""

from __future__ import annotations

import io

from PIL import Image

from matcher.service.runtime import Runtime
from matcher.store import AuditEntry, NotFound, get_sighting, read_photo, record, session_scope
from matcher.store.cases import get_case_photo
from matcher.store.faces import get_face
from matcher.vocabulary import SYSTEM, Actor

CROP_MARGIN = 0.4  # of the box's size, on each side: hair, ears and chin help a reviewer
CROP_MAX_SIDE = 320
CROP_QUALITY = 90


def case_photo_image(matcher: Runtime, case_id: int, photo_id: int,
                     actor: Actor = SYSTEM) -> bytes:
    """JPEG bytes of a case's photo (NotFound unless the photo belongs to that case)."""
    with session_scope(matcher.sessions) as session:
        photo = get_case_photo(session, case_id, photo_id)
        record(session, actor, AuditEntry("read", "case_photo", photo_id, {"case_id": case_id}))
        path = photo.path
    return read_photo(matcher.settings.data_dir, path)


def sighting_photo(matcher: Runtime, sighting_id: int, actor: Actor = SYSTEM) -> bytes:
    """JPEG bytes of a sighting's stored (metadata-free) photo."""
    with session_scope(matcher.sessions) as session:
        sighting = get_sighting(session, sighting_id)
        record(session, actor, AuditEntry("read", "sighting_photo", sighting_id))
        path = sighting.path
    return read_photo(matcher.settings.data_dir, path)


def face_crop(matcher: Runtime, face_id: int, actor: Actor = SYSTEM) -> bytes:
    """A JPEG of the face (of a sighting or a case photo) with a margin, at most
    CROP_MAX_SIDE px."""
    with session_scope(matcher.sessions) as session:
        face = get_face(session, face_id)
        owner = face.case_photo or face.sighting
        if owner is None:
            raise NotFound(f"no face {face_id}")
        record(session, actor, AuditEntry("read", "face_crop", face_id, {
            "case_photo_id": face.case_photo_id, "sighting_id": face.sighting_id}))
        box, path = list(face.box), owner.path
    return _crop(read_photo(matcher.settings.data_dir, path), box)


def _crop(jpeg: bytes, box: list[float]) -> bytes:
    left, top, right, bottom = box
    margin = CROP_MARGIN * max(right - left, bottom - top)
    with Image.open(io.BytesIO(jpeg)) as image:
        width, height = image.size
        area = (max(0, int(left - margin)), max(0, int(top - margin)),
                min(width, int(right + margin) + 1), min(height, int(bottom + margin) + 1))
        # Decode at a reduced scale when the crop would be shrunk anyway (JPEG DCT scaling):
        # a face in a 12 MP photo then costs a fraction of a full decode.
        shrink = max(1, min(8, int(max(area[2] - area[0], area[3] - area[1]) / CROP_MAX_SIDE)))
        image.draft("RGB", (width // shrink, height // shrink))
        scale = image.size[0] / width
        x0, y0, x1, y1 = (round(v * scale) for v in area)
        crop = image.convert("RGB").crop((x0, y0, x1, y1))
    crop.thumbnail((CROP_MAX_SIDE, CROP_MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    crop.save(out, format="JPEG", quality=CROP_QUALITY)
    return out.getvalue()
