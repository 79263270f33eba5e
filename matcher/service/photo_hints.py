"""A sentence a tip app or case desk can show when a photo has no face fit for matching.

`{"faces": []}` told the sender nothing it could act on; most such photos are taken again
within seconds if the app says what to change. The hint is built from the faces' own unfit
codes (matcher/embed/quality.py), so it never claims more than the detector found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matcher.embed.quality import TOO_BLURRY, TOO_SMALL
from matcher.service.faces import FaceFeedback

NO_FACE = "no_face"
NO_FACE_MESSAGE = "no face found: take the photo closer, facing the camera"
# What to change, per unfit code; an unknown code still gets the general advice.
ADVICE = {
    TOO_SMALL: "the face is too small: take the photo closer",
    TOO_BLURRY: "the face is blurred: hold the camera still, in good light",
}


@dataclass(frozen=True)
class PhotoHint:
    """What to tell the sender, and the codes it comes from (`no_face`, `too_small`, ...)."""

    message: str
    reasons: tuple[str, ...]


def photo_hint(faces: Sequence[FaceFeedback]) -> PhotoHint | None:
    """None when a face is fit for matching; else why none is, as one sentence."""
    if any(face.fit for face in faces):
        return None
    if not faces:
        return PhotoHint(NO_FACE_MESSAGE, (NO_FACE,))
    reasons = tuple(dict.fromkeys(code for face in faces for code in face.reasons))
    advice = [ADVICE.get(code, f"the face is unfit for matching ({code})") for code in reasons]
    lead = "no usable face" if len(faces) == 1 else f"none of the {len(faces)} faces is usable"
    return PhotoHint(f"{lead}: " + "; ".join(advice or ["take the photo again"]), reasons)
