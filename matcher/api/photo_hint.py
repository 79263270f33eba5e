"""The `hint` of an upload's answer: the service's PhotoHint as the response model."""

from __future__ import annotations

from collections.abc import Sequence

from matcher.api.schemas import PhotoHintPublic
from matcher.service.faces import FaceFeedback
from matcher.service.photo_hints import photo_hint


def hint_of(faces: Sequence[FaceFeedback]) -> PhotoHintPublic | None:
    hint = photo_hint(faces)
    return None if hint is None else PhotoHintPublic(message=hint.message,
                                                     reasons=list(hint.reasons))
