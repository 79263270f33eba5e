"""The phone photos of the service benchmark: every upload decodes to other pixels of the same
photo, without the client re-encoding it."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from matcher.bench.phone import FULL_SIZE, Person, phone_jpeg
from tests.data import lfw_photos


def test_variants_are_one_photo_in_other_pixels() -> None:
    face = lfw_photos()[0].path
    photo = phone_jpeg(Person("someone", face, face), seed=0)
    decoded = [np.asarray(Image.open(io.BytesIO(photo.variant(n)))) for n in (0, 1, 2)]
    assert all(pixels.shape == (FULL_SIZE[1], FULL_SIZE[0], 3) for pixels in decoded)
    changed = [np.any(decoded[0] != other, axis=(1, 2)) for other in decoded[1:]]
    assert changed[0].any() and changed[1].any() and not np.array_equal(*changed)
    # The marks sit in the first block of a row: the rest of the scene is the same photo.
    assert np.array_equal(decoded[0][:, 32:], decoded[1][:, 32:])
