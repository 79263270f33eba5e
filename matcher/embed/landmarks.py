"""dlib's 5-point face landmark predictor (an ERT `shape_predictor`) in numpy.

Reads `shape_predictor_5_face_landmarks.dat` and reproduces dlib 20's inference bit for bit
(see ../shared/NOTES-dlib-weights.md, sections 1, 4 and 6): the same float32 arithmetic, the
same pixel rounding, the same grey conversion, trees added one at a time. Landmarks come out as
integer-valued points exactly like dlib's `full_object_detection` parts.

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

from matcher.embed.errors import ModelFileError
from matcher.embed.types import Image
from matcher.embed.weights import DLIB_SHAPE5, Arrays, load_converted

log = logging.getLogger(__name__)

# Bump when parse_shape_predictor's output changes, so stale .npz caches are not served.
SHAPE_CONVERTER_VERSION = "1"

# float_details exponent sentinels (inf, -inf, nan).
_POS_INF, _NEG_INF, _NAN = 32000, 32001, 32002

# Above this many values per tree (faces x 2P), summing leaf vectors in a Python loop over
# trees beats np.add.accumulate (measured: 64 faces, 0.35 ms vs 1.2 ms per cascade).
_LOOP_MIN_VALUES = 160

_ARRAY_NAMES = (
    "initial_shape",
    "split_idx1",
    "split_idx2",
    "split_thresh",
    "leaves",
    "anchor_idx",
    "deltas",
)


# ------------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------------


def _token_starts(data: bytes) -> NDArray[np.int64]:
    """Byte offsets of every serialized integer in `data`.

    Every field of a shape_predictor file (ints, vector lengths, matrix sizes, and floats,
    which are a mantissa int then an exponent int) is one of dlib's variable-length integers:
    a control byte whose low nibble is the number of magnitude bytes that follow. So the
    whole file is a chain of such tokens. Finding where each starts is inherently sequential
    (one token's length places the next); this tight loop is the only per-token Python work,
    about 1 s for the 3.2 M tokens of the shipped file, and its result is cached as .npz.
    """
    starts: list[int] = []
    append = starts.append
    pos, end = 0, len(data)
    while pos < end:
        append(pos)
        pos += (data[pos] & 0x0F) + 1
    if pos != end:
        raise ModelFileError("shape predictor file is truncated (ends inside an integer)")
    return np.asarray(starts, dtype=np.int64)


def _decode_tokens(data: bytes, starts: NDArray[np.int64]) -> NDArray[np.int64]:
    """The signed value of each token, decoded for all tokens at once."""
    buf = np.frombuffer(data, dtype=np.uint8)
    control = buf[starts]
    size = (control & 0x0F).astype(np.int64)
    if np.any(control & 0x70) or np.any(size == 0) or np.any(size > 8):
        bad = int(starts[np.argmax((control & 0x70 != 0) | (size == 0) | (size > 8))])
        raise ModelFileError(f"not a dlib shape predictor: bad integer control byte at {bad}")
    padded = np.concatenate([buf, np.zeros(8, dtype=np.uint8)])
    magnitude = np.zeros(starts.shape, dtype=np.uint64)
    for k in range(8):  # little-endian magnitude bytes; tokens shorter than k+1 get nothing
        byte = padded[starts + 1 + k].astype(np.uint64)
        magnitude |= np.where(size > k, byte, 0).astype(np.uint64) << np.uint64(8 * k)
    if np.any(magnitude >= np.uint64(1 << 63)):
        raise ModelFileError("not a dlib shape predictor: integer out of int64 range")
    value = magnitude.astype(np.int64)
    return np.where(control & 0x80, -value, value)


def _floats(mantissa: NDArray[np.int64], exponent: NDArray[np.int64]) -> NDArray[np.float32]:
    """float_details pairs -> float32 (mantissa * 2**exponent, exact for dlib's float)."""
    finite = np.abs(exponent) < _POS_INF
    value = np.ldexp(mantissa.astype(np.float64), np.where(finite, exponent, 0).astype(np.int32))
    value = np.where(exponent == _POS_INF, np.inf, value)
    value = np.where(exponent == _NEG_INF, -np.inf, value)
    value = np.where(exponent == _NAN, np.nan, value)
    return value.astype(np.float32)


class _Tokens:
    """A cursor over the decoded token stream that reads whole blocks as arrays."""

    def __init__(self, values: NDArray[np.int64]) -> None:
        self.values = values
        self.pos = 0

    def take(self, count: int, what: str) -> NDArray[np.int64]:
        if count < 0 or self.pos + count > self.values.size:
            raise ModelFileError(f"shape predictor file is truncated while reading {what}")
        block = self.values[self.pos : self.pos + count]
        self.pos += count
        return block

    def peek(self, offset: int, what: str) -> int:
        if self.pos + offset >= self.values.size:
            raise ModelFileError(f"shape predictor file is truncated while reading {what}")
        return int(self.values[self.pos + offset])

    def one(self, what: str) -> int:
        return int(self.take(1, what)[0])


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise ModelFileError(f"not the expected dlib shape predictor layout: {what}")


def _read_forests(tokens: _Tokens, dims: int) -> dict[str, NDArray[np.generic]]:
    """vector<vector<regression_tree>>, read as one block (every tree has the same shape)."""
    cascades = tokens.one("number of cascades")
    trees = tokens.peek(0, "number of trees")
    splits = tokens.peek(1, "number of splits")
    _expect(cascades > 0 and trees > 0 and splits > 0, "empty forest")
    leaves = tokens.peek(2 + 4 * splits, "number of leaves")
    _expect(leaves == splits + 1 and leaves & (leaves - 1) == 0, "trees are not full")
    # A tree: split count, splits (idx1, idx2, mantissa, exponent), leaf count, then each leaf
    # as a matrix<float> (-rows, -cols, then `dims` mantissa/exponent pairs).
    tree_size = 1 + 4 * splits + 1 + leaves * (2 + 2 * dims)
    block = tokens.take(cascades * (1 + trees * tree_size), "the forests")
    block = block.reshape(cascades, 1 + trees * tree_size)
    _expect(bool(np.all(block[:, 0] == trees)), "cascades differ in tree count")
    tree = block[:, 1:].reshape(cascades, trees, tree_size)
    _expect(bool(np.all(tree[..., 0] == splits)), "trees differ in split count")
    _expect(bool(np.all(tree[..., 1 + 4 * splits] == leaves)), "trees differ in leaf count")
    split = tree[..., 1 : 1 + 4 * splits].reshape(cascades, trees, splits, 4)
    leaf = tree[..., 2 + 4 * splits :].reshape(cascades, trees, leaves, 2 + 2 * dims)
    _expect(bool(np.all(np.abs(leaf[..., 0]) == dims)), "leaf vectors of the wrong length")
    _expect(bool(np.all(np.abs(leaf[..., 1]) == 1)), "leaf values are not column vectors")
    pairs = leaf[..., 2:].reshape(cascades, trees, leaves, dims, 2)
    return {
        "split_idx1": split[..., 0].astype(np.int32),
        "split_idx2": split[..., 1].astype(np.int32),
        "split_thresh": _floats(split[..., 2], split[..., 3]),
        "leaves": _floats(pairs[..., 0], pairs[..., 1]),
    }


def _read_pixel_encoding(tokens: _Tokens, cascades: int) -> dict[str, NDArray[np.generic]]:
    """anchor_idx (vector<vector<ulong>>) and deltas (vector<vector<vector<float,2>>>)."""
    _expect(tokens.one("anchor count") == cascades, "anchor_idx has the wrong cascade count")
    features = tokens.peek(0, "feature count")
    _expect(features > 0, "no feature pixels")
    anchors = tokens.take(cascades * (1 + features), "anchor_idx").reshape(cascades, -1)
    _expect(bool(np.all(anchors[:, 0] == features)), "cascades differ in feature count")
    _expect(tokens.one("delta count") == cascades, "deltas has the wrong cascade count")
    deltas = tokens.take(cascades * (1 + 4 * features), "deltas").reshape(cascades, -1)
    _expect(bool(np.all(deltas[:, 0] == features)), "deltas and anchors differ in length")
    pairs = deltas[:, 1:].reshape(cascades, features, 2, 2)  # (x, y) x (mantissa, exponent)
    return {
        "anchor_idx": anchors[:, 1:].astype(np.int32),
        "deltas": _floats(pairs[..., 0], pairs[..., 1]),
    }


def parse_shape_predictor(data: bytes) -> dict[str, NDArray[np.generic]]:
    """Reads a dlib shape_predictor file into dense arrays.

    Returns initial_shape (P, 2) float32; split_idx1 / split_idx2 (C, T, S) int32 and
    split_thresh (C, T, S) float32; leaves (C, T, S+1, 2P) float32; anchor_idx (C, F) int32;
    deltas (C, F, 2) float32. For the 5-point model P=5, C=15, T=500, S=15, F=800.
    Raises ModelFileError when the bytes are not such a file or are truncated.
    """
    tokens = _Tokens(_decode_tokens(data, _token_starts(data)))
    _expect(tokens.one("version") == 1, "unknown shape_predictor version")
    rows, cols = abs(tokens.one("initial shape rows")), abs(tokens.one("initial shape cols"))
    _expect(cols == 1 and rows > 0 and rows % 2 == 0, "initial shape is not a column of points")
    shape = tokens.take(2 * rows, "initial shape").reshape(rows, 2)
    arrays: dict[str, NDArray[np.generic]] = {
        "initial_shape": _floats(shape[:, 0], shape[:, 1]).reshape(rows // 2, 2)
    }
    arrays.update(_read_forests(tokens, rows))
    cascades = arrays["split_idx1"].shape[0]
    arrays.update(_read_pixel_encoding(tokens, cascades))
    _expect(tokens.pos == tokens.values.size, "trailing data after the model")
    _check_arrays(arrays)
    log.debug(
        "parsed shape predictor: %d parts, %d cascades of %d trees",
        rows // 2,
        cascades,
        arrays["split_idx1"].shape[1],
    )
    return arrays


def _check_arrays(arrays: Mapping[str, NDArray[np.generic]]) -> None:
    """Shapes and index ranges agree, so predict() can never index out of bounds."""
    missing = [name for name in _ARRAY_NAMES if name not in arrays]
    _expect(not missing, f"missing arrays {missing}")
    parts = arrays["initial_shape"].shape[0]
    cascades, trees, splits = arrays["split_idx1"].shape
    features = arrays["anchor_idx"].shape[1]
    _expect(arrays["initial_shape"].shape == (parts, 2), "initial_shape shape")
    _expect(arrays["split_idx2"].shape == (cascades, trees, splits), "split_idx2 shape")
    _expect(arrays["split_thresh"].shape == (cascades, trees, splits), "split_thresh shape")
    _expect(arrays["leaves"].shape == (cascades, trees, splits + 1, 2 * parts), "leaves shape")
    _expect(splits & (splits + 1) == 0, "trees are not full binary trees")
    _expect(arrays["anchor_idx"].shape == (cascades, features), "anchor_idx shape")
    _expect(arrays["deltas"].shape == (cascades, features, 2), "deltas shape")
    for name, bound in (("split_idx1", features), ("split_idx2", features), ("anchor_idx", parts)):
        index = np.asarray(arrays[name], dtype=np.int64)
        _expect(bool(np.all((index >= 0) & (index < bound))), f"{name} out of range")


# ------------------------------------------------------------------------------------------
# Inference
# ------------------------------------------------------------------------------------------


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
        _check_arrays(arrays)
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
