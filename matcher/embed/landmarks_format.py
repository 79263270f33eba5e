"""dlib's `shape_predictor_5_face_landmarks.dat`, read into numpy arrays.

The file layout is in ../shared/NOTES-dlib-weights.md (sections 1 and 4); `landmarks.py` runs
the predictor on what this returns (or on its cached .npz), and checks it first with
`check_arrays`, so inference can never index out of bounds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from matcher.embed.errors import ModelFileError

log = logging.getLogger(__name__)

# Bump when parse_shape_predictor's output changes, so stale .npz caches are not served.
SHAPE_CONVERTER_VERSION = "1"

# float_details exponent sentinels (inf, -inf, nan).
_POS_INF, _NEG_INF, _NAN = 32000, 32001, 32002

_ARRAY_NAMES = (
    "initial_shape",
    "split_idx1",
    "split_idx2",
    "split_thresh",
    "leaves",
    "anchor_idx",
    "deltas",
)


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
    check_arrays(arrays)
    log.debug(
        "parsed shape predictor: %d parts, %d cascades of %d trees",
        rows // 2,
        cascades,
        arrays["split_idx1"].shape[1],
    )
    return arrays


def check_arrays(arrays: Mapping[str, NDArray[np.generic]]) -> None:
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
