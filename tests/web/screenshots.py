"""Screenshots of the review page with every face blurred, for docs/.

The research photos may not be redistributed unblurred, so a screenshot is blurred before it
is written: over every face box the page draws from the API's boxes (on the sighting photo,
the case photos, the zoomed photo), with a margin for hair and ears, and over every face crop
whole; the boxes' outlines are drawn again on top. The page's own geometry
(getBoundingClientRect) says where each one is on screen.
`MATCHER_REVIEW_SCREENSHOTS=docs .venv/bin/pytest tests/web` renews the pictures that
docs/review.md shows; without it they go to the test's temporary folder.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

ENV = "MATCHER_REVIEW_SCREENSHOTS"
MARGIN = 0.35  # of a face box's size, on each side
# The on-screen rectangles of faces, [left, top, right, bottom] in CSS px: each face box grown
# by the margin, then cut to its picture and to every scrolled box around it (what shows), and
# every face crop whole. Only the zoom's while it is open: it covers the rest.
FACES = """margin => {
  const zoom = document.getElementById('zoom');
  const scope = zoom && !zoom.hidden ? zoom : document;
  const clip = (node, r) => {
    for (let up = node.parentElement; up; up = up.parentElement) {
      const style = getComputedStyle(up);
      if (style.overflowX !== 'visible' || style.overflowY !== 'visible'
          || up.classList.contains('frame')) {
        const c = up.getBoundingClientRect();
        r = [Math.max(r[0], c.left), Math.max(r[1], c.top),
             Math.min(r[2], c.right), Math.min(r[3], c.bottom)];
      }
    }
    return r;
  };
  const found = [];
  const outlines = [];
  const add = (node, grow) => {
    const b = node.getBoundingClientRect();
    if (b.width <= 0 || b.height <= 0) {
      return;
    }
    const g = grow * Math.max(b.width, b.height);
    const r = clip(node, [b.left - g, b.top - g, b.right + g, b.bottom + g]);
    if (r[2] - r[0] > 1 && r[3] - r[1] > 1) {
      found.push(r);
    }
    if (grow) {  // a face box: drawn again over the blur, as the page shows it
      const own = clip(node, [b.left, b.top, b.right, b.bottom]);
      const style = getComputedStyle(node);
      outlines.push([...own, style.borderTopColor, parseFloat(style.borderTopWidth)]);
    }
  };
  scope.querySelectorAll('.box').forEach((n) => add(n, margin));
  scope.querySelectorAll('img.crop, #l-probe, img.mini').forEach((n) => add(n, 0));
  return [found, outlines];
}"""


def _rgb(css: str) -> tuple[int, int, int]:
    """'rgb(255, 204, 0)' (what getComputedStyle gives) as a tuple."""
    red, green, blue = (int(float(v)) for v in css[css.index("(") + 1:css.index(")")]
                        .split(",")[:3])
    return red, green, blue


def folder(default: Path) -> Path:
    """Where screenshots go: MATCHER_REVIEW_SCREENSHOTS, else `default`."""
    chosen = os.environ.get(ENV)
    return Path(chosen) if chosen else default


def blurred(page: Any, path: Path) -> list[tuple[int, int, int, int]]:
    """Writes a screenshot of the page with the faces blurred; returns the regions blurred
    (image px)."""
    scale = float(page.evaluate("() => window.devicePixelRatio"))
    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    regions = []
    faces, outlines = page.evaluate(FACES, MARGIN)
    for left, top, right, bottom in faces:
        box = (max(0, int(left * scale)), max(0, int(top * scale)),
               min(image.width, int(right * scale) + 1), min(image.height, int(bottom * scale) + 1))
        if box[2] - box[0] < 2 or box[3] - box[1] < 2:
            continue  # off screen
        radius = max(6, (box[2] - box[0]) // 8)
        image.paste(image.crop(box).filter(ImageFilter.GaussianBlur(radius)), box[:2])
        regions.append(box)
    draw = ImageDraw.Draw(image)
    for left, top, right, bottom, color, width in outlines:
        if right - left > 1 and bottom - top > 1:
            draw.rectangle([left * scale, top * scale, right * scale - 1, bottom * scale - 1],
                           outline=_rgb(color), width=max(1, round(width * scale)))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    return regions
