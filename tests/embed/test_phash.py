"""The perceptual hash that links burst shots (matcher/embed/phash.py), on research photos:
a photo resized, recompressed or brightened stays within a few bits of itself; two unrelated
portraits are further apart than the burst rule's 10 bits."""

from __future__ import annotations

import io
import itertools

import numpy as np
from PIL import Image

from matcher.embed.phash import dhash, hamming
from matcher.service.repeats import BURST_BITS
from tests.data import lfw_photos, require_test_data


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue()))


def test_a_photo_and_its_copies_stay_close_and_strangers_stay_apart() -> None:
    require_test_data()
    photos = [Image.open(p.path).convert("RGB") for p in lfw_photos()[:40]]
    hashes = [dhash(_rgb(p)) for p in photos]
    apart = [hamming(a, b) for a, b in itertools.combinations(hashes, 2)]
    assert min(apart) > BURST_BITS and np.median(apart) >= 25
    image = photos[0]
    w, h = image.size
    copies = [image.resize((w * 3 // 4, h * 3 // 4)), _jpeg(image, 40),
              image.crop((w // 50, h // 50, w - w // 50, h - h // 50)),
              Image.fromarray(np.clip(_rgb(image).astype(int) + 20, 0, 255).astype(np.uint8))]
    assert all(hamming(hashes[0], dhash(_rgb(c))) <= 2 for c in copies)
    assert -(2 ** 63) <= min(hashes) and max(hashes) < 2 ** 63  # a signed BIGINT holds it
