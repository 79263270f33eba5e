"""Aligned face chips exactly as dlib cuts them for its descriptor network.

dlib's `get_face_chip_details(shape, 150, 0.25)` and `extract_image_chips` (dlib/image_transforms/
interpolation.h, image_pyramid.h), reproduced in numpy. The descriptor network was trained on
these chips, so every detail matters: the 5-point template, dlib's rectangle conventions
(inclusive corners, `centered_drect` shrinking by one pixel), bilinear sampling whose channel
values are truncated rather than rounded, 0 outside the image, and the `pyramid_down<2>` image
pyramid that dlib builds first when a face is more than about twice the chip's size. Without
that pyramid, descriptors of large faces drift by up to 0.1 (L2) from dlib's.

Rectangles here are dlib `drectangle`s: (left, top, right, bottom), right/bottom inclusive, so
width = right - left + 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from matcher.embed.types import Image

Rect = tuple[float, float, float, float]
Affine = tuple[NDArray[np.float64], NDArray[np.float64]]  # (2x2 matrix, translation)

# dlib's mean face, 5-point version (get_face_chip_details in interpolation.h), in the order
# of shape_predictor_5_face_landmarks: right-eye outer, right-eye inner, left-eye outer,
# left-eye inner (as seen on the image: x decreasing then increasing), nose base. Unit square.
FACE_TEMPLATE_5 = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ],
    dtype=np.float64,
)


@dataclass(frozen=True)
class ChipDetails:
    """Where to cut one chip: dlib's `chip_details` (a rotated rectangle plus output size)."""

    rect: Rect  # the un-rotated rectangle in source px, dlib drectangle convention
    angle: float  # rotation of the rectangle about its centre, radians
    rows: int
    cols: int

    @property
    def size(self) -> int:
        return self.rows * self.cols


# --------------------------------------------------------------------------------------------
# Geometry (dlib's drectangle / point transform helpers)


def _rect_area(rect: Rect) -> float:
    left, top, right, bottom = rect
    if top > bottom or left > right:
        return 0.0
    return (right - left + 1) * (bottom - top + 1)


def _rect_down(rect: Rect) -> Rect:
    """pyramid_down<2>::rect_down: each corner p -> p/2 - (1.25, 0.75)."""
    left, top, right, bottom = rect
    return (left / 2.0 - 1.25, top / 2.0 - 0.75, right / 2.0 - 1.25, bottom / 2.0 - 0.75)


def _center(rect: Rect) -> tuple[float, float]:
    left, top, right, bottom = rect
    return (left + right) / 2.0, (top + bottom) / 2.0


def _rotated_corners(rect: Rect, angle: float) -> NDArray[np.float64]:
    """tl, tr, bl, br corners of `rect` rotated by `angle` about its centre (rotate_point)."""
    left, top, right, bottom = rect
    cx, cy = _center(rect)
    corners = np.array([[left, top], [right, top], [left, bottom], [right, bottom]])
    dx, dy = corners[:, 0] - cx, corners[:, 1] - cy
    cos, sin = math.cos(angle), math.sin(angle)
    return np.stack([cos * dx - sin * dy + cx, sin * dx + cos * dy + cy], axis=1)


def _lround(value: float) -> int:
    """C's lround: halves away from zero (Python's round() goes to even)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def similarity_transform(src: NDArray[np.float64], dst: NDArray[np.float64]) -> Affine:
    """Least-squares similarity src -> dst (Umeyama 1991, eqs. 34-43), as dlib computes it."""
    mean_src, mean_dst = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - mean_src, dst - mean_dst
    sigma_src = float((src_c**2).sum(axis=1).mean())
    cov = dst_c.T @ src_c / len(src)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    if np.linalg.det(cov) < 0 or (
        np.linalg.det(cov) == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0
    ):
        s[(1, 1) if d[1] < d[0] else (0, 0)] = -1
    rotation = u @ s @ vt
    scale = float(np.trace(np.diag(d) @ s)) / sigma_src if sigma_src != 0 else 1.0
    matrix = scale * rotation
    return matrix, mean_dst - matrix @ mean_src


# --------------------------------------------------------------------------------------------
# Chip placement


def chip_details(
    landmarks: NDArray[np.floating] | NDArray[np.integer], size: int = 150, padding: float = 0.25
) -> ChipDetails:
    """dlib's get_face_chip_details for a 5-point shape (dlib order), `size` x `size` output."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"expected 5 (x, y) landmarks in dlib's order, got {points.shape}")
    if size <= 0 or padding < 0:
        raise ValueError(f"need size > 0 and padding >= 0, got {size}, {padding}")
    template = (padding + FACE_TEMPLATE_5) / (2 * padding + 1) * size
    matrix, offset = similarity_transform(template, points)
    px, py = matrix[0, 0], matrix[1, 0]  # the image of the unit x vector
    angle = math.atan2(py, px)
    scale = math.sqrt(px * px + py * py)
    cx, cy = matrix @ np.array([size / 2.0, size / 2.0]) + offset
    # centered_drect shrinks width and height by one: dlib's inclusive-corner convention.
    half = (size * scale - 1) / 2
    return ChipDetails((cx - half, cy - half, cx + half, cy + half), angle, size, size)


# --------------------------------------------------------------------------------------------
# Extraction


def pyramid_down_2(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """dlib's pyramid_down<2> on an (H, W, 3) RGB image: separable [1 4 6 4 1] filter, keep every
    other pixel, integer sums divided by 256 with truncation. Output ((H-3)//2, (W-3)//2, 3);
    images of 8 px or less on a side give an empty image, as in dlib."""
    return np.ascontiguousarray(
        _pyramid_down_planes(np.ascontiguousarray(image.transpose(2, 0, 1))).transpose(1, 2, 0)
    )


def _pyramid_down_planes(planes: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """pyramid_down_2 on (3, H, W) colour planes, the layout in which numpy does it fastest."""
    rows, cols = planes.shape[1:]
    if rows <= 8 or cols <= 8:
        return np.zeros((planes.shape[0], 0, 0), dtype=np.uint8)
    src = planes.astype(np.uint16)  # 16 * 16 * 255 = 65280 fits, as in dlib's rgbptype
    across = _filter_taps(src, (cols - 3) // 2, axis=2)
    down = _filter_taps(across, (rows - 3) // 2, axis=1)
    return (down >> 8).astype(np.uint8)


def _filter_taps(src: NDArray[np.uint16], count: int, axis: int) -> NDArray[np.uint16]:
    """out[i] = src[2i] + 4 src[2i+1] + 6 src[2i+2] + 4 src[2i+3] + src[2i+4] along `axis`,
    from the even and odd samples so every operand is a plain slice in memory order."""

    def part(start: int, stop: int, step: int = 1) -> tuple[slice, ...]:
        index = [slice(None)] * src.ndim
        index[axis] = slice(start, stop, step)
        return tuple(index)

    even, odd = src[part(0, 2 * count + 3, 2)], src[part(1, 2 * count + 2, 2)]
    out = even[part(0, count)] + even[part(2, count + 2)] + 6 * even[part(1, count + 1)]
    out += 4 * (odd[part(0, count)] + odd[part(1, count + 1)])
    return out


def _crop_box(
    image_shape: tuple[int, ...], details: Sequence[ChipDetails]
) -> tuple[tuple[int, int, int, int], int]:
    """The integer (left, top, right, bottom) region dlib pyramids: the union over chips of the
    rotated rect grown by a border that doubles (plus 2) per pyramid level, clipped to the
    image. Also returns the deepest pyramid level any chip needs."""
    height, width = image_shape[:2]
    box: list[int] | None = None
    max_depth = 0
    for chip in details:
        depth, grow = 0, 2.0
        rect = _rect_down(chip.rect)
        while _rect_area(rect) > chip.size:
            rect = _rect_down(rect)
            depth += 1
            grow = grow * 2 + 2
        corners = _rotated_corners(chip.rect, chip.angle)
        grown = (
            max(corners[:, 0].min() - grow, 0.0),
            max(corners[:, 1].min() - grow, 0.0),
            min(corners[:, 0].max() + grow, width - 1.0),
            min(corners[:, 1].max() + grow, height - 1.0),
        )
        part = [_lround(v) for v in grown]
        max_depth = max(max_depth, depth)
        if part[0] > part[2] or part[1] > part[3]:
            continue  # an empty rectangle adds nothing to dlib's union
        box = part if box is None else [*map(min, box[:2], part[:2]), *map(max, box[2:], part[2:])]
    left, top, right, bottom = box if box is not None else (0, 0, -1, -1)
    return (left, top, right, bottom), max_depth


def _sample_bilinear(
    planes: NDArray[np.uint8], transform: Affine, rows: int, cols: int
) -> NDArray[np.uint8]:
    """dlib's transform_image with interpolate_bilinear from (3, H, W) planes: chip pixel (c, r)
    reads the source at m @ (c, r) + b; a sample needs all four neighbours inside (else 0);
    channel values truncate."""
    matrix, offset = transform
    cc, rr = np.meshgrid(np.arange(cols, dtype=np.float64), np.arange(rows, dtype=np.float64))
    x = matrix[0, 0] * cc + matrix[0, 1] * rr + offset[0]
    y = matrix[1, 0] * cc + matrix[1, 1] * rr + offset[1]
    left, top = np.floor(x), np.floor(y)
    height, width = planes.shape[1:]
    inside = (left >= 0) & (top >= 0) & (left + 1 < width) & (top + 1 < height)
    out = np.zeros((rows, cols, 3), dtype=np.uint8)
    if not inside.any():
        return out
    li, ti = left[inside].astype(np.intp), top[inside].astype(np.intp)
    lr = (x[inside] - left[inside])[None, :]  # (1, n) against (3, n) neighbour values
    tb = (y[inside] - top[inside])[None, :]

    def at(dy: int, dx: int) -> NDArray[np.float64]:
        return planes[:, ti + dy, li + dx].astype(np.float64)

    tl, tr, bl, br = at(0, 0), at(0, 1), at(1, 0), at(1, 1)
    # Same operation order as dlib so the truncation lands on the same side.
    value = (1 - tb) * ((1 - lr) * tl + lr * tr) + tb * ((1 - lr) * bl + lr * br)
    out[inside] = value.T.astype(np.uint8)
    return out


def _chip_to_rect_transform(rect: Rect, angle: float, rows: int, cols: int) -> Affine:
    """The affine map taking chip corners (0,0), (cols-1,0), (0,rows-1) onto the rotated
    rect's tl, tr, bl corners (dlib solves the same 3-point system with a pseudo-inverse)."""
    tl, tr, bl, _ = _rotated_corners(rect, angle)
    col_step = (tr - tl) / (cols - 1) if cols > 1 else np.zeros(2)
    row_step = (bl - tl) / (rows - 1) if rows > 1 else np.zeros(2)
    return np.stack([col_step, row_step], axis=1), tl


def _copy_chip(image: Image, rect: Rect) -> NDArray[np.uint8]:
    """dlib's basic_extract_image_chip: a plain crop (0 outside) for unrotated, unscaled chips."""
    left, top, right, bottom = (_lround(v) for v in rect)
    out = np.zeros((max(bottom - top + 1, 0), max(right - left + 1, 0), 3), dtype=np.uint8)
    height, width = image.shape[:2]
    src_t, src_l = max(top, 0), max(left, 0)
    src_b, src_r = min(bottom, height - 1), min(right, width - 1)
    if src_b >= src_t and src_r >= src_l:
        out[src_t - top : src_b - top + 1, src_l - left : src_r - left + 1] = image[
            src_t : src_b + 1, src_l : src_r + 1
        ]
    return out


def extract_chips(image: Image, details: Sequence[ChipDetails]) -> NDArray[np.uint8]:
    """dlib's extract_image_chips (bilinear): (N, rows, cols, 3) uint8 chips of an RGB image.

    As in dlib, the pyramid is built once over the union of all chips' regions, so a chip can
    differ by a grey level depending on which other faces of the photo are cut with it; pass
    one face at a time to match dlib's per-face `get_face_chip` exactly.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if not details:
        return np.zeros((0, 0, 0, 3), dtype=np.uint8)
    if len({(d.rows, d.cols) for d in details}) != 1:
        raise ValueError("all chips of one call must have the same size")
    (left, top, right, bottom), max_depth = _crop_box(image.shape, details)
    crop = image[top : bottom + 1, left : right + 1] if right >= left else image[:0, :0]
    crop_planes = np.ascontiguousarray(crop.transpose(2, 0, 1))  # 2x faster pyramid than a view
    levels: list[NDArray[np.uint8]] = []  # pyramid_down<2> of the crop, as (3, H, W) planes
    for _ in range(max_depth):
        levels.append(_pyramid_down_planes(levels[-1] if levels else crop_planes))
    chips = [_extract_one(image, crop_planes, levels, (left, top), chip) for chip in details]
    return np.stack(chips)


def _extract_one(
    image: Image,
    crop_planes: NDArray[np.uint8],
    levels: list[NDArray[np.uint8]],
    origin: tuple[int, int],
    chip: ChipDetails,
) -> NDArray[np.uint8]:
    left, top, right, bottom = chip.rect
    if chip.angle == 0 and chip.rows == bottom - top + 1 and chip.cols == right - left + 1:
        return _copy_chip(image, chip.rect)
    rect: Rect = (left - origin[0], top - origin[1], right - origin[0], bottom - origin[1])
    level = -1
    while _rect_area(_rect_down(rect)) > chip.size:
        level += 1
        rect = _rect_down(rect)
    source = crop_planes if level == -1 else levels[level]
    transform = _chip_to_rect_transform(rect, chip.angle, chip.rows, chip.cols)
    return _sample_bilinear(source, transform, chip.rows, chip.cols)
