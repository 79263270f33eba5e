"""Reads dlib's `serialize()` byte stream (see ../shared/NOTES-dlib-weights.md, sections 1-2).

The files carry no type tags: callers must read fields in the order the C++ type wrote them.
Everything here is pure numpy; no dlib needed.
"""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from matcher.embed.errors import ModelFileError

# float_details exponent sentinels.
_POS_INF, _NEG_INF, _NAN = 32000, 32001, 32002


@dataclass(frozen=True)
class TensorShape:
    n: int
    k: int
    nr: int
    nc: int


class DlibReader:
    """A cursor over a dlib-serialized byte buffer."""

    def __init__(self, data: bytes, name: str = "<bytes>") -> None:
        self._data = memoryview(data)
        self.pos = 0
        self.name = name

    def _fail(self, what: str) -> ModelFileError:
        return ModelFileError(f"{self.name}: {what} at byte {self.pos}")

    @property
    def at_end(self) -> bool:
        return self.pos >= len(self._data)

    def raw(self, count: int) -> bytes:
        if self.pos + count > len(self._data):
            raise self._fail(f"unexpected end of file reading {count} bytes")
        chunk = bytes(self._data[self.pos : self.pos + count])
        self.pos += count
        return chunk

    def int(self) -> int:
        """dlib's variable-length integer: control byte (sign bit 0x80, length in low nibble)."""
        if self.pos >= len(self._data):
            raise self._fail("unexpected end of file reading an integer")
        control = self._data[self.pos]
        size = control & 0x0F
        if control & 0x70 or not 1 <= size <= 8:
            raise self._fail(f"bad integer control byte 0x{control:02x}")
        self.pos += 1
        magnitude = int.from_bytes(self.raw(size), "little")
        return -magnitude if control & 0x80 else magnitude

    def byte(self) -> builtins.int:
        return self.raw(1)[0]

    def bool(self) -> bool:
        value = self.raw(1)
        if value not in (b"0", b"1"):
            raise self._fail(f"bad bool byte {value!r}")
        return value == b"1"

    def float(self) -> float:
        """float_details: signed int64 mantissa, then int16 exponent; value = m * 2**e."""
        mantissa = self.int()
        exponent = self.int()
        if exponent == _POS_INF:
            return math.inf
        if exponent == _NEG_INF:
            return -math.inf
        if exponent == _NAN:
            return math.nan
        return math.ldexp(mantissa, exponent)

    def string(self) -> str:
        length = self.int()
        return self.raw(length).decode("latin-1")

    def expect_string(self, *allowed: str) -> str:
        value = self.string()
        if value not in allowed:
            raise self._fail(f"expected one of {allowed}, found {value!r}")
        return value

    def expect_int(self, *allowed: builtins.int) -> builtins.int:
        value = self.int()
        if value not in allowed:
            raise self._fail(f"expected one of {allowed}, found {value}")
        return value

    def float_matrix(self) -> NDArray[np.float32]:
        """dlib::matrix<float>: -nr, -nc (negated in the current format), then row-major values."""
        rows, cols = self.int(), self.int()
        rows, cols = abs(rows), abs(cols)
        values = [self.float() for _ in range(rows * cols)]
        return np.asarray(values, dtype=np.float32).reshape(rows, cols)

    def tensor(self) -> NDArray[np.float32]:
        """resizable_tensor: version 2, n, k, nr, nc, then raw little-endian float32 (NCHW)."""
        self.expect_int(2)
        n, k, nr, nc = (self.int() for _ in range(4))
        count = n * k * nr * nc
        flat = np.frombuffer(self.raw(4 * count), dtype="<f4").astype(np.float32)
        return flat.reshape(n, k, nr, nc)

    def alias_tensor(self) -> TensorShape:
        self.expect_int(1)
        return TensorShape(self.int(), self.int(), self.int(), self.int())
