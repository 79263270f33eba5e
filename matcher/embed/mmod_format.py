"""dlib's `mmod_human_face_detector.dat`, read into numpy arrays for `mmod.py`'s network.

The file layout is in ../shared/NOTES-dlib-weights.md (sections 1 and 3). Only the layers of
dlib's example net are accepted, in order; anything else is a ModelFileError.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from matcher.embed.dlib_format import DlibReader
from matcher.embed.errors import ModelFileError
from matcher.embed.weights import DLIB_MMOD

MMOD_CONVERTER_VERSION = "1"

# (filters, kernel, stride, padding) of each conv, bottom up, from dlib's
# examples/dnn_mmod_face_detection_ex.cpp; an affine + relu follows every conv but the last.
CONVS: tuple[tuple[int, int, int, int], ...] = (
    (16, 5, 2, 0),
    (32, 5, 2, 0),
    (32, 5, 2, 0),
    (45, 5, 1, 2),
    (45, 5, 1, 2),
    (45, 5, 1, 2),
    (1, 9, 1, 4),
)
NUM_AFFINE = len(CONVS) - 1


def parse_mmod(data: bytes) -> dict[str, np.ndarray]:
    """Reads the serialized `loss_mmod<... input_rgb_image_pyramid<pyramid_down<6>>>` net.

    Batch-norm layers are folded into per-channel scale/shift exactly as dlib's `affine_`
    does when it loads a `bn_con2` (float32: g = gamma / sqrt(var + eps), b = beta - g * mean).
    """
    reader = DlibReader(data, DLIB_MMOD.relative_path)
    arrays: dict[str, np.ndarray] = {}
    reader.expect_int(1)  # add_loss_layer version
    reader.expect_string("loss_mmod_")
    _read_mmod_options(reader, arrays)

    # From the top layer down: one add_layer version each; the bottom one wraps the input.
    num_layers = len(CONVS) + 2 * NUM_AFFINE
    versions = [reader.expect_int(1, 2) for _ in range(num_layers - 1)]
    versions.append(reader.expect_int(2, 3))
    versions.reverse()  # now bottom up, the order the layer details follow

    version = reader.expect_string("input_rgb_image_pyramid", "input_rgb_image_pyramid2")
    arrays["input_mean"] = np.array([reader.float() for _ in range(3)], dtype=np.float32)
    padding = (reader.int(), reader.int()) if version.endswith("2") else (10, 11)
    arrays["pyramid_padding"] = np.array(padding, dtype=np.int64)

    layer = 0
    for index, conv in enumerate(CONVS):
        weight, bias = _read_conv(reader, conv)
        arrays[f"conv{index}.weight"], arrays[f"conv{index}.bias"] = weight, bias
        _read_layer_tail(reader, versions[layer], bottom=layer == 0)
        layer += 1
        if index < NUM_AFFINE:
            scale, shift = _read_bn_folded(reader, conv[0])
            arrays[f"affine{index}.scale"], arrays[f"affine{index}.shift"] = scale, shift
            _read_layer_tail(reader, versions[layer], bottom=False)
            _read_relu(reader)
            _read_layer_tail(reader, versions[layer + 1], bottom=False)
            layer += 2
    if not reader.at_end:
        raise ModelFileError(f"{reader.name}: {len(data) - reader.pos} unread bytes at the end")
    return arrays


def _read_mmod_options(reader: DlibReader, arrays: dict[str, np.ndarray]) -> None:
    version = reader.expect_int(1, 2, 3, 4)
    if version == 1:
        windows = [(reader.int(), reader.int())]
    else:
        windows = []
        for _ in range(reader.int()):
            window_version = reader.expect_int(1, 2)
            windows.append((reader.int(), reader.int()))
            if window_version == 2:
                reader.string()  # label
    if len(windows) != 1:
        raise ModelFileError(f"{reader.name}: expected one detector window, found {windows}")
    for _ in range(3):  # loss per false alarm / missed target, truth-match iou: training only
        reader.float()
    nms = (reader.float(), reader.float())  # iou threshold, percent covered threshold
    reader.float(), reader.float()  # "ignore" overlap test: training only
    if version >= 3:
        reader.byte()  # assume_image_pyramid
    if version >= 4 and reader.bool():
        raise ModelFileError(f"{reader.name}: bounding-box regression is not supported")
    if version >= 4:
        reader.float()  # bbr_lambda
    arrays["window"] = np.array(windows[0], dtype=np.int64)  # width, height
    arrays["nms"] = np.array(nms, dtype=np.float64)


def _read_conv(
    reader: DlibReader, spec: tuple[int, int, int, int]
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    filters, kernel, stride, padding = spec
    version = reader.expect_string("con_4", "con_5", "con_6")
    params = reader.tensor().ravel()
    # num_filters, nr, nc, stride_y, stride_x, padding_y, padding_x
    found = tuple(reader.int() for _ in range(7))
    if found != (filters, kernel, kernel, stride, stride, padding, padding):
        raise ModelFileError(f"{reader.name}: unexpected conv layer {found}, expected {spec}")
    shape = reader.alias_tensor()
    reader.alias_tensor()  # biases: (1, filters, 1, 1)
    for _ in range(4):  # learning-rate / weight-decay multipliers
        reader.float()
    use_bias = reader.bool() if version in ("con_5", "con_6") else True
    if version == "con_6" and reader.bool():
        raise ModelFileError(f"{reader.name}: fused conv+relu is not expected here")
    count = shape.n * shape.k * shape.nr * shape.nc
    if shape.n != filters or params.size != count + (filters if use_bias else 0):
        raise ModelFileError(f"{reader.name}: conv params do not match their shape {shape}")
    weight = params[:count].reshape(shape.n, shape.k, shape.nr, shape.nc)
    bias = params[count:] if use_bias else np.zeros(filters, dtype=np.float32)
    return weight.astype(np.float32), bias.astype(np.float32)


def _read_bn_folded(
    reader: DlibReader, channels: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    version = reader.expect_string("bn_con2", "affine_", "affine_2")
    params = reader.tensor().ravel()
    reader.alias_tensor(), reader.alias_tensor()  # gamma, beta views
    if params.size != 2 * channels:
        raise ModelFileError(f"{reader.name}: batch-norm params of size {params.size}")
    gamma, beta = params[:channels], params[channels:]
    if version != "bn_con2":  # already an affine layer
        if reader.int() != 0:
            raise ModelFileError(f"{reader.name}: affine layer not in CONV_MODE")
        if version == "affine_2" and reader.bool():
            return np.ones(channels, np.float32), np.zeros(channels, np.float32)
        return gamma.astype(np.float32), beta.astype(np.float32)
    reader.tensor(), reader.tensor()  # batch means / invstds: training only
    running_mean = reader.tensor().ravel()
    running_var = reader.tensor().ravel()
    reader.int(), reader.int()  # num_updates, running_stats_window_size
    for _ in range(4):
        reader.float()
    eps = np.float32(reader.float())
    scale = (gamma / np.sqrt(running_var + eps)).astype(np.float32)
    shift = (beta - scale * running_mean).astype(np.float32)
    return scale, shift


def _read_relu(reader: DlibReader) -> None:
    if reader.expect_string("relu_", "relu_2") == "relu_2" and reader.bool():
        raise ModelFileError(f"{reader.name}: a disabled relu is not expected here")


def _read_layer_tail(reader: DlibReader, version: int, *, bottom: bool) -> None:
    """The add_layer fields after the layer details (gradients etc.; empty after net.clean())."""
    for _ in range(3):
        reader.bool()
    reader.tensor(), reader.tensor()  # x_grad, cached_output
    if bottom:
        reader.tensor()  # grad_final
        if version >= 3:
            reader.int()  # sample_expansion_factor
    elif version == 2:
        reader.tensor()  # params_grad
