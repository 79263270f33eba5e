"""The dlib stream reader against byte strings built from the format's rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from matcher.embed.dlib_format import DlibReader
from matcher.embed.errors import ModelFileError


def encode_int(value: int) -> bytes:
    """Inverse of `DlibReader.int`: dlib's writer, for building test streams."""
    magnitude = abs(value)
    body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def encode_float(value: float, digits: int = 24) -> bytes:
    """Inverse of `DlibReader.float` for finite values (mantissa scaled to `digits` bits)."""
    mantissa, exponent = math.frexp(value)
    scaled = int(mantissa * (1 << digits))
    exponent -= digits
    while scaled and scaled % 256 == 0:  # dlib drops trailing zero bytes
        scaled //= 256
        exponent += 8
    return encode_int(scaled) + encode_int(exponent)


@pytest.mark.parametrize("value", [0, 1, -1, 127, 128, 255, 256, -300, 2**40 + 7, -(2**62)])
def test_integers_round_trip(value: int) -> None:
    assert DlibReader(encode_int(value)).int() == value


def test_zero_is_encoded_with_one_magnitude_byte() -> None:
    assert encode_int(0) == b"\x01\x00"


def test_known_bytes_from_the_resnet_file() -> None:
    # Notes §1: the face-recognition model's margin and dist_thresh as stored.
    reader = DlibReader(bytes.fromhex("030ad7a3811c" "039a999981 18".replace(" ", "")))
    assert reader.float() == pytest.approx(0.04, abs=1e-9)
    assert reader.float() == pytest.approx(0.6, abs=1e-7)
    assert reader.at_end


@pytest.mark.parametrize("value", [0.5, -122.782, 1e-8, 3.0e7, 104.298])
def test_floats_round_trip(value: float) -> None:
    decoded = DlibReader(encode_float(value)).float()
    assert decoded == pytest.approx(value, rel=1e-7)


def test_special_float_exponents() -> None:
    assert DlibReader(encode_int(1) + encode_int(32000)).float() == math.inf
    assert DlibReader(encode_int(1) + encode_int(32001)).float() == -math.inf
    assert math.isnan(DlibReader(encode_int(1) + encode_int(32002)).float())


def test_string_bool_and_matrix() -> None:
    data = (
        encode_int(5) + b"con_4" + b"1" + b"0"
        + encode_int(-2) + encode_int(-1) + encode_float(1.5) + encode_float(-2.25)
    )
    reader = DlibReader(data)
    assert reader.expect_string("con_4") == "con_4"
    assert reader.bool() is True
    assert reader.bool() is False
    np.testing.assert_array_equal(reader.float_matrix(), np.array([[1.5], [-2.25]], np.float32))


def test_tensor_is_raw_float32() -> None:
    values = np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1)
    data = encode_int(2) + b"".join(encode_int(v) for v in values.shape) + values.tobytes()
    np.testing.assert_array_equal(DlibReader(data).tensor(), values)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "end of file"),
        (b"\x71\x00", "control byte"),
        (b"\x04\x01", "end of file"),
        (encode_int(9) + b"short", "end of file"),
        (b"x", "bool"),
    ],
)
def test_malformed_streams_raise_model_file_error(data: bytes, message: str) -> None:
    reader = DlibReader(data, name="test.dat")
    with pytest.raises(ModelFileError, match=message):
        if message == "bool":
            reader.bool()
        elif data.startswith(encode_int(9)):
            reader.string()
        else:
            reader.int()


def test_expect_string_names_what_was_found() -> None:
    with pytest.raises(ModelFileError, match="relu_"):
        DlibReader(encode_int(5) + b"relu_").expect_string("con_4")
