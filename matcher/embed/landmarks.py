"""dlib's 5-point face landmark predictor (an ERT `shape_predictor`) in numpy.

Runs `shape_predictor_5_face_landmarks.dat` (read by `landmarks_format.py`) and reproduces
dlib 20's inference bit for bit (see ../shared/NOTES-dlib-weights.md, sections 1, 4 and 6): the
same float32 arithmetic, the same pixel rounding, the same grey conversion, trees added one at a
time. Landmarks come out as integer-valued points exactly like dlib's `full_object_detection`
parts.

The five points, in dlib's order and in image terms (from the model's mean shape): the outer
and inner corner of the eye on the image's right, the outer and inner corner of the eye on the
image's left, then the bottom of the nose.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from matcher.embed.landmarks_format import (
    SHAPE_CONVERTER_VERSION,
    check_arrays,
    parse_shape_predictor,
)
from matcher.embed.types import Image
from matcher.embed.weights import DLIB_SHAPE5, Arrays, load_converted

log = logging.getLogger(__name__)

# Above this many values per tree (faces x 2P), summing leaf vectors in a Python loop over
# trees beats np.add.accumulate (measured: 64 faces, 0.35 ms vs 1.2 ms per cascade).
_LOOP_MIN_VALUES = 160


def similarity_matrices(
    reference: NDArray[np.float32], shapes: NDArray[np.float32]
) -> NDArray[np.float32]:
    """The 2x2 part of the least-squares similarity from `reference` (P,2) to each of
    `shapes` (N,P,2), computed in float64 and cast to float32 as dlib does.

    dlib gets it from Umeyama's SVD method (find_similarity_transform); for 2-D points with a
    proper rotation and non-negative scale the optimum is unique and has this closed form,
    [[a, -b], [b, a]] with a = sum(x.y)/sum|x|^2 and b = sum(x cross y)/sum|x|^2 (centred
    points). The two agree to ~1e-16, far below float32 resolution.
    """
    src = reference.astype(np.float64)
    src = src - src.mean(axis=0)
    dst = shapes.astype(np.float64)
    dst = dst - dst.mean(axis=1, keepdims=True)
    norm = np.sum(src * src)
    a = np.einsum("pk,npk->n", src, dst) / norm
    b = (dst[..., 1] @ src[:, 0] - dst[..., 0] @ src[:, 1]) / norm
    matrices = np.empty((shapes.shape[0], 2, 2), dtype=np.float32)
    matrices[:, 0, 0] = matrices[:, 1, 1] = a
    matrices[:, 0, 1], matrices[:, 1, 0] = -b, b
    return matrices


def _to_image(
    u: NDArray[np.float32], v: NDArray[np.float32], boxes: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Box-normalised points u, v (N,K) -> integer pixel x, y (N,K), as dlib's
    unnormalizing_tform (in double) followed by its float->int point conversion,
    floor(v + 0.5).

    dlib builds that transform with a pseudo-inverse, so its double may sit an ulp away from
    left + u * width; that could only matter for a value exactly on a .5 tie, and none of the
    faces checked against dlib hit one."""
    left, top = boxes[:, 0, None], boxes[:, 1, None]
    width = (boxes[:, 2] - boxes[:, 0])[:, None]  # inclusive rect: (0,0)->tl, (1,1)->br
    height = (boxes[:, 3] - boxes[:, 1])[:, None]
    x = left + u.astype(np.float64) * width
    y = top + v.astype(np.float64) * height
    return np.floor(x + 0.5).astype(np.int64), np.floor(y + 0.5).astype(np.int64)


def pixel_intensities(
    image: NDArray[np.uint8], x: NDArray[np.int64], y: NDArray[np.int64]
) -> NDArray[np.float32]:
    """dlib's get_pixel_intensity at integer points, 0 outside the image.

    For rgb_pixel dlib's grey value is (R + G + B) / 3 in unsigned integer arithmetic
    (truncating); a grey (H, W) image is used as is, which equals its RGB copy's value.
    """
    height, width = image.shape[:2]
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    xs, ys = np.where(inside, x, 0), np.where(inside, y, 0)
    if image.ndim == 2:
        grey = image[ys, xs].astype(np.int32)
    else:
        grey = image[ys, xs].astype(np.int32).sum(axis=-1) // 3
    return np.where(inside, grey, 0).astype(np.float32)


def _as_boxes(boxes: NDArray[np.generic]) -> NDArray[np.int64]:
    array = np.asarray(boxes)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) left, top, right, bottom; got {array.shape}")
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise ValueError("boxes must be finite")
        array = np.floor(array + 0.5)  # dlib rectangles hold integers
    return array.astype(np.int64)


def _check_image(image: NDArray[np.generic]) -> None:
    if image.dtype != np.uint8 or not (
        image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)
    ):
        raise ValueError(
            f"image must be (H, W, 3) or (H, W) uint8; got {image.shape} {image.dtype}"
        )


class ShapePredictor:
    """dlib's ERT landmark predictor, vectorised over faces and over the trees of a cascade."""

    def __init__(self, arrays: Mapping[str, NDArray[np.generic]]) -> None:
        check_arrays(arrays)
        self.initial_shape = np.ascontiguousarray(arrays["initial_shape"], dtype=np.float32)
        self.split_idx1 = np.ascontiguousarray(arrays["split_idx1"], dtype=np.intp)
        self.split_idx2 = np.ascontiguousarray(arrays["split_idx2"], dtype=np.intp)
        self.split_thresh = np.ascontiguousarray(arrays["split_thresh"], dtype=np.float32)
        self.leaves = np.ascontiguousarray(arrays["leaves"], dtype=np.float32)
        self.anchor_idx = np.ascontiguousarray(arrays["anchor_idx"], dtype=np.intp)
        self.deltas = np.ascontiguousarray(arrays["deltas"], dtype=np.float32)
        # Trees are full binary trees (checked): every walk is exactly this many splits deep.
        self.depth = int(self.leaves.shape[2]).bit_length() - 1

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[np.generic]]) -> ShapePredictor:
        """From parse_shape_predictor's output (or its cached .npz)."""
        return cls(arrays)

    @classmethod
    def load(cls, cache_dir: Path | None = None) -> ShapePredictor:
        """The shipped 5-point model; parsed once, then read from the .npz cache."""
        arrays: Arrays = load_converted(
            DLIB_SHAPE5, parse_shape_predictor, SHAPE_CONVERTER_VERSION, cache_dir
        )
        return cls(arrays)

    @property
    def num_parts(self) -> int:
        return int(self.initial_shape.shape[0])

    def predict(self, image: Image, boxes: NDArray[np.generic]) -> NDArray[np.float32]:
        """Landmarks (N, P, 2) in pixels for each box (N, 4): left, top, right, bottom,
        inclusive integer dlib rectangles (boxes may extend past the image). The points are
        integer-valued, as dlib rounds them."""
        _check_image(image)
        rects = _as_boxes(boxes)
        count = rects.shape[0]
        if count == 0:
            return np.zeros((0, self.num_parts, 2), dtype=np.float32)
        shape = np.broadcast_to(self.initial_shape, (count, self.num_parts, 2)).copy()
        for cascade in range(self.split_idx1.shape[0]):
            features = self._features(image, rects, shape, cascade)
            shape = self._apply_forest(shape, features, cascade)
        x, y = _to_image(shape[..., 0], shape[..., 1], rects)
        return np.stack([x, y], axis=-1).astype(np.float32)

    def _features(
        self,
        image: Image,
        rects: NDArray[np.int64],
        shape: NDArray[np.float32],
        cascade: int,
    ) -> NDArray[np.float32]:
        """The cascade's feature pixel values (N, F): its reference pixels, placed relative to
        the current shape through the similarity transform, all in float32 like dlib."""
        matrix = similarity_matrices(self.initial_shape, shape)  # (N, 2, 2)
        dx, dy = self.deltas[cascade, :, 0], self.deltas[cascade, :, 1]
        anchors = shape[:, self.anchor_idx[cascade], :]  # (N, F, 2)
        # dlib: (tform * delta) + anchor, each product and sum rounded to float32.
        u = (matrix[:, 0, 0, None] * dx + matrix[:, 0, 1, None] * dy) + anchors[..., 0]
        v = (matrix[:, 1, 0, None] * dx + matrix[:, 1, 1, None] * dy) + anchors[..., 1]
        x, y = _to_image(u, v, rects)
        return pixel_intensities(image, x, y)

    def _apply_forest(
        self, shape: NDArray[np.float32], features: NDArray[np.float32], cascade: int
    ) -> NDArray[np.float32]:
        """Runs all trees of a cascade on every face and adds their leaf vectors."""
        count, num_features = features.shape
        trees, splits = self.split_idx1.shape[1:]
        idx1, idx2 = self.split_idx1[cascade].ravel(), self.split_idx2[cascade].ravel()
        thresh = self.split_thresh[cascade].ravel()
        flat_features = features.ravel()
        row = np.arange(count)[:, None] * num_features
        tree_start = np.arange(trees) * splits
        node = np.zeros((count, trees), dtype=np.intp)
        for _ in range(self.depth):  # all faces and trees step down one level together
            split = tree_start + node
            # Differences of integer intensities are exact in float32, as in dlib.
            left = flat_features[row + idx1[split]] - flat_features[row + idx2[split]]
            node = 2 * node + 2 - (left > thresh[split]).astype(np.intp)  # left child: 2i+1
        leaves = self.leaves[cascade].reshape(trees * (splits + 1), -1)
        leaf = (node - splits).T + (np.arange(trees) * (splits + 1))[:, None]
        values = np.take(leaves, leaf, axis=0)  # (T, N, 2P)
        return _add_in_sequence(shape.reshape(count, -1), values).reshape(shape.shape)


def _add_in_sequence(
    start: NDArray[np.float32], values: NDArray[np.float32]
) -> NDArray[np.float32]:
    """start + values[0] + values[1] + ..., rounded to float32 after every addition.

    dlib adds the trees' leaf vectors one at a time in float32, so a pairwise sum (numpy's
    reductions) would round differently. Both branches below add strictly in order; they
    differ only in speed: accumulate is cheap per call but slow per element, the loop the
    reverse, so a loop pays off once a tree's vectors cover many faces.
    """
    if start.size < _LOOP_MIN_VALUES:
        stacked = np.concatenate([start[None], values], axis=0)
        return np.add.accumulate(stacked, axis=0)[-1]
    total = start.copy()
    for step in values:
        total += step
    return total
