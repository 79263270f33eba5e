"""dlib's MMOD CNN face detector (`mmod_human_face_detector.dat`) in torch.

The port follows dlib 20 (see ../shared/NOTES-dlib-weights.md, sections 3 and 6) so that its
boxes are dlib's boxes: the 5-point landmark model was trained on exactly these rectangles.

Pipeline, as `dlib::cnn_face_detection_model_v1(img, 0)` runs it:
1. one *tiled pyramid* canvas per image (`compute_tiled_image_pyramid_details`): the image,
   then repeated x5/6 bilinear (align_corners) downscales packed beside it, 0 elsewhere;
2. the network: 3 x (5x5 stride-2 conv, affine, relu), 3 x (5x5 conv 45, affine, relu), 9x9 conv;
3. every output cell scoring above the threshold is an 80x80 window, mapped back through the
   pyramid level whose tile is nearest its centre, rounded with lround, then greedy NMS.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from matcher.embed.errors import ImageError
from matcher.embed.mmod_format import CONVS, MMOD_CONVERTER_VERSION, NUM_AFFINE, parse_mmod
from matcher.embed.types import Detection, Image
from matcher.embed.weights import DLIB_MMOD, load_converted

log = logging.getLogger(__name__)

# pyramid_down<6> is a template argument of the C++ net type, so it is not in the file.
PYRAMID_N = 6
# Levels stop once a level would be shorter than this (compute_tiled_image_pyramid_details).
_MIN_LEVEL_HEIGHT = 5

Rect = tuple[int, int, int, int]  # dlib rectangle: left, top, right, bottom, inclusive


# --------------------------------------------------------------------------- the network


class MMODNet(nn.Module):
    """The detector's fully convolutional net: normalised RGB canvas -> 1-channel score map."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(3 if i == 0 else CONVS[i - 1][0], f, k, stride=s, padding=p)
            for i, (f, k, s, p) in enumerate(CONVS)
        )
        for i, (filters, *_rest) in enumerate(CONVS[:-1]):
            self.register_buffer(f"scale{i}", torch.ones(1, filters, 1, 1))
            self.register_buffer(f"shift{i}", torch.zeros(1, filters, 1, 1))

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Loads `parse_mmod` output (strictly: a missing or extra array is an error)."""
        state: dict[str, torch.Tensor] = {}
        for i in range(len(CONVS)):
            state[f"convs.{i}.weight"] = torch.from_numpy(arrays[f"conv{i}.weight"])
            state[f"convs.{i}.bias"] = torch.from_numpy(arrays[f"conv{i}.bias"])
        for i in range(NUM_AFFINE):
            state[f"scale{i}"] = torch.from_numpy(arrays[f"affine{i}.scale"]).view(1, -1, 1, 1)
            state[f"shift{i}"] = torch.from_numpy(arrays[f"affine{i}.shift"]).view(1, -1, 1, 1)
        self.load_state_dict(state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < NUM_AFFINE:  # dlib keeps the folded batch norm as a separate affine layer
                x = torch.relu(x * getattr(self, f"scale{i}") + getattr(self, f"shift{i}"))
        return x


def _output_size(size: int) -> int:
    """Rows (or columns) of the score map for a canvas side of `size`; <= 0 means none."""
    for _filters, kernel, stride, padding in CONVS:
        size = (size + 2 * padding - kernel) // stride + 1
        if size <= 0:
            return 0
    return size


def _window_centre_offset() -> tuple[int, int]:
    """(scale, offset) with input = scale * output + offset: dlib's map_output_to_input."""
    scale, offset = 1, 0
    for _filters, kernel, stride, padding in reversed(CONVS):
        scale, offset = scale * stride, offset * stride + kernel // 2 - padding
    return scale, offset


# --------------------------------------------------------------------------- tiled pyramid


@dataclass(frozen=True)
class PyramidLayout:
    """Where each pyramid level sits in the canvas (dlib's `rects`) and the canvas size."""

    rects: tuple[Rect, ...]
    height: int
    width: int


def pyramid_layout(
    nr: int, nc: int, padding: int = 10, outer_padding: int = 11, n: int = PYRAMID_N
) -> PyramidLayout:
    """dlib's `compute_tiled_image_pyramid_details` for `pyramid_down<n>`."""
    if nr * nc == 0:
        return PyramidLayout((), 0, 0)
    sizes = [(nr, nc)]  # (height, width) of each level
    rate = (n - 1.0) / n
    while True:
        nr, nc = int(np.floor(rate * nr)), int(np.floor(rate * nc))
        if nr * nc == 0 or nr < _MIN_LEVEL_HEIGHT:
            break
        sizes.append((nr, nc))

    first_h, first_w = sizes[0]
    total_height = sum(h + padding for h, _ in sizes) - 2 * padding
    height, prev_width = 0, 0
    for h, w in sizes:  # how far the first column goes before doubling back
        if w <= first_w - prev_width - padding and (height - first_h) * 2 >= total_height - first_h:
            break
        height += h + padding
        prev_width = w
    height -= padding

    rects: list[Rect] = []
    y = outer_padding
    while y < height + outer_padding and len(rects) < len(sizes):
        h, w = sizes[len(rects)]
        rects.append((outer_padding, y, outer_padding + w - 1, y + h - 1))
        y += h + padding
    y -= padding
    first = rects[0]
    while len(rects) < len(sizes):  # the rest, bottom up along the right edge
        h, w = sizes[len(rects)]
        right, bottom = outer_padding + first_w - 1, y - 1
        rect = (right - (w - 1), bottom - (h - 1), right, bottom)
        if _intersects(first, rect):
            break
        rects.append(rect)
        y -= h + padding
    return PyramidLayout(tuple(rects), height + 2 * outer_padding, first_w + 2 * outer_padding)


def _intersects(a: Rect, b: Rect) -> bool:
    return max(a[0], b[0]) <= min(a[2], b[2]) and max(a[1], b[1]) <= min(a[3], b[3])


def build_canvas(image: torch.Tensor, layout: PyramidLayout, mean: torch.Tensor) -> torch.Tensor:
    """The (3, H, W) float canvas: (image - mean) / 256 as level 0, each next level a bilinear
    (align_corners) resize of the previous one in float, as dlib's `tt::resize_bilinear`."""
    canvas = image.new_zeros((3, layout.height, layout.width), dtype=torch.float32)
    left, top, right, bottom = layout.rects[0]
    level = (image.permute(2, 0, 1).float() - mean.view(3, 1, 1)) / 256.0
    canvas[:, top : bottom + 1, left : right + 1] = level
    for left, top, right, bottom in layout.rects[1:]:
        size = (bottom - top + 1, right - left + 1)
        level = F.interpolate(level[None], size=size, mode="bilinear", align_corners=True)[0]
        canvas[:, top : bottom + 1, left : right + 1] = level
    return canvas


# --------------------------------------------------------------------------- boxes and NMS


def lround(values: NDArray[np.float64]) -> NDArray[np.int64]:
    """C's lround: halves away from zero (numpy's round goes to even)."""
    return (np.sign(values) * np.floor(np.abs(values) + 0.5)).astype(np.int64)


def map_to_image(
    centres: NDArray[np.float64], window: tuple[int, int], layout: PyramidLayout
) -> NDArray[np.int64]:
    """Canvas window centres (N, 2: x, y) -> image rects (N, 4), via `tiled_pyramid_to_image`.

    The level is the tile nearest the centre (first one containing it, else the first at the
    smallest distance); the corners are moved by that tile's origin and scaled up once per level.
    """
    rects = np.asarray(layout.rects, dtype=np.float64)  # (L, 4)
    nearest_x = np.clip(centres[:, None, 0], rects[None, :, 0], rects[None, :, 2])
    nearest_y = np.clip(centres[:, None, 1], rects[None, :, 1], rects[None, :, 3])
    distance = np.hypot(nearest_x - centres[:, None, 0], nearest_y - centres[:, None, 1])
    level = np.argmin(distance, axis=1)  # first minimum, as dlib's strict `<`; 0 when inside

    half_w, half_h = (window[0] - 1) / 2, (window[1] - 1) / 2  # centered_drect
    origin = rects[level][:, :2]
    corners = np.concatenate(
        [centres - (half_w, half_h) - origin, centres + (half_w, half_h) - origin], axis=1
    )
    ratio = PYRAMID_N / (PYRAMID_N - 1.0)
    for step in range(int(level.max(initial=0))):  # point_up, applied `level` times
        up = level > step
        corners[up] = corners[up] * ratio + 0.3
    return lround(corners)


def overlaps(
    box: NDArray[np.int64], others: NDArray[np.int64], iou: float, covered: float
) -> NDArray[np.bool_]:
    """dlib's `test_box_overlap` of one inclusive rect against many. Note dlib's "iou"
    divides by the area of the bounding box of both rects, not of their union."""
    inner_w = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]) + 1
    inner_h = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]) + 1
    inner = (np.clip(inner_w, 0, None) * np.clip(inner_h, 0, None)).astype(np.float64)
    outer = (np.maximum(box[2], others[:, 2]) - np.minimum(box[0], others[:, 0]) + 1) * (
        np.maximum(box[3], others[:, 3]) - np.minimum(box[1], others[:, 1]) + 1
    )
    area_box = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
    area_others = (others[:, 2] - others[:, 0] + 1) * (others[:, 3] - others[:, 1] + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        hit = (inner / outer > iou) | (inner / area_box > covered) | (inner / area_others > covered)
    return (inner > 0) & hit


def greedy_nms(boxes: NDArray[np.int64], iou: float, covered: float) -> list[int]:
    """Indices kept by dlib's greedy NMS over boxes already sorted by score, best first.

    A box survives if it overlaps no box kept before it; since the overlap test is symmetric,
    this equals "keep the best remaining, drop everything it overlaps, repeat".
    """
    alive = np.ones(len(boxes), dtype=bool)
    kept: list[int] = []
    for index in range(len(boxes)):
        if not alive[index]:
            continue
        kept.append(index)
        rest = np.flatnonzero(alive[index + 1 :]) + index + 1
        alive[rest[overlaps(boxes[index], boxes[rest], iou, covered)]] = False
    return kept


# --------------------------------------------------------------------------- the detector


class MMODDetector:
    """dlib's CNN face detector: `load()` once, then `detect()` batches of RGB images."""

    name = "mmod"

    def __init__(self, arrays: dict[str, np.ndarray], device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.net = MMODNet()
        self.net.load_arrays(arrays)
        self.net.eval().to(self.device)
        self.mean = torch.from_numpy(arrays["input_mean"]).to(self.device)
        self.padding, self.outer_padding = (int(v) for v in arrays["pyramid_padding"])
        self.window = (int(arrays["window"][0]), int(arrays["window"][1]))
        self.nms_iou, self.nms_covered = (float(v) for v in arrays["nms"])

    @classmethod
    def load(cls, cache_dir: Path | None, device: str = "cpu") -> MMODDetector:
        arrays = load_converted(DLIB_MMOD, parse_mmod, MMOD_CONVERTER_VERSION, cache_dir)
        return cls(arrays, device)

    def layout(self, height: int, width: int) -> PyramidLayout:
        return pyramid_layout(height, width, self.padding, self.outer_padding)

    @torch.inference_mode()
    def score_maps(self, images: Sequence[Image]) -> list[NDArray[np.float32] | None]:
        """The net's (rows, cols) score map per image (None when the canvas is too small).

        Images of the same size share one batch; a different size would need padding, which
        changes the padded convs' values near the canvas edge, so those run separately.
        """
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            groups.setdefault(image.shape[:2], []).append(index)
        maps: list[NDArray[np.float32] | None] = [None] * len(images)
        for (height, width), indices in groups.items():
            layout = self.layout(height, width)
            if not layout.rects or min(map(_output_size, (layout.height, layout.width))) <= 0:
                continue
            batch = torch.stack(
                [
                    build_canvas(torch.tensor(images[i], device=self.device), layout, self.mean)
                    for i in indices
                ]
            )
            scores = self.net(batch)[:, 0].float().cpu().numpy()
            for i, score_map in zip(indices, scores, strict=True):
                maps[i] = score_map
        return maps

    def detect(self, images: Sequence[Image], threshold: float = 0.0) -> list[list[Detection]]:
        """Faces per image, best first, with dlib's boxes (inclusive, image px) and scores."""
        rgb = [_as_rgb(image) for image in images]
        maps = self.score_maps(rgb)
        return [
            [] if score_map is None else self._detections(score_map, image.shape[:2], threshold)
            for image, score_map in zip(rgb, maps, strict=True)
        ]

    def dlib_box(self, detection: Detection) -> tuple[int, int, int, int]:
        """This detector's boxes are dlib's own rectangles already (integers held as floats)."""
        left, top, right, bottom = lround(np.asarray(detection.box, dtype=np.float64))
        return int(left), int(top), int(right), int(bottom)

    def _detections(
        self, score_map: NDArray[np.float32], shape: tuple[int, ...], threshold: float
    ) -> list[Detection]:
        rows, cols = np.nonzero(score_map > threshold)
        if rows.size == 0:
            return []
        scores = score_map[rows, cols].astype(np.float64)
        scale, offset = _window_centre_offset()
        centres = np.stack([cols * scale + offset, rows * scale + offset], axis=1).astype(
            np.float64
        )
        boxes = map_to_image(centres, self.window, self.layout(shape[0], shape[1]))
        order = np.argsort(-scores, kind="stable")
        boxes, scores = boxes[order], scores[order]
        kept = greedy_nms(boxes, self.nms_iou, self.nms_covered)
        log.debug("mmod: %d windows above %.3f, %d after NMS", rows.size, threshold, len(kept))
        return [_detection(boxes[i], scores[i]) for i in kept]


def _detection(box: NDArray[np.int64], score: np.float64) -> Detection:
    left, top, right, bottom = (float(v) for v in box)
    return Detection((left, top, right, bottom), float(score))


def _as_rgb(image: Image) -> NDArray[np.uint8]:
    """dlib's Python API takes 8-bit grey or RGB; grey is copied into all three channels."""
    if image.dtype != np.uint8:
        raise ImageError(f"the detector needs uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"the detector needs an (H, W, 3) RGB image, got shape {image.shape}")
    return np.ascontiguousarray(image)
