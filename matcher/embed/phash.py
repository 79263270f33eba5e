"""A photo's perceptual hash: 64 bits that stay (nearly) the same when the photo is resized,
recompressed, or shot again a moment later from the same place, and differ in about half their
bits between two unrelated photos. It links the burst shots of one moment (issue 22, item 6).

The difference hash (dHash): the photo in grey, shrunk to 9 x 8, one bit per pair of
horizontal neighbours (is the left one brighter?). Shrinking keeps only the coarse layout of
light and dark, which is what two shots of the same moment share.
"""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage

from matcher.embed.types import Image

BITS = 64


def dhash(image: Image) -> int:
    """The 64-bit difference hash of an (H, W, 3) uint8 RGB photo, as a signed 64-bit integer
    (what a database's BIGINT holds)."""
    grey = PILImage.fromarray(image).convert("L").resize((9, 8), PILImage.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.int16)
    bits = (pixels[:, :-1] > pixels[:, 1:]).flatten()
    value = int("".join("1" if bit else "0" for bit in bits), 2)
    return value - (1 << BITS) if value >= 1 << (BITS - 1) else value


def hamming(a: int, b: int) -> int:
    """How many of the 64 bits differ."""
    return int(((a ^ b) & ((1 << BITS) - 1)).bit_count())
