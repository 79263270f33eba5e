"""dlib's 128-d face descriptor network (dlib_face_recognition_resnet_model_v1), in torch.

The file layout and the inference rules this reproduces are in ../shared/NOTES-dlib-weights.md
(sections 3-5). The graph is not stored in the file: it is the C++ `anet_type` of dlib's
examples/dnn_face_recognition_ex.cpp, rebuilt here, and the parser checks that the file's layer
sequence matches it so a wrong file fails loudly instead of producing plausible garbage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor, nn

from matcher.embed.dlib_format import DlibReader
from matcher.embed.errors import ModelFileError
from matcher.embed.weights import DLIB_RESNET, Arrays, load_converted

log = logging.getLogger(__name__)

# Bump when the array names or their meaning change: it keys the .npz weight cache.
RESNET_CONVERTER_VERSION = "1"

CHIP_SIZE = 150
DESCRIPTOR_DIM = 128
_STEM_CHANNELS = 32

# (in channels, out channels, downsampling?) of each residual unit, input to output:
# alevel4 = 3 x ares(32); alevel3 = ares_down(64) + 3 x ares(64); alevel2 = ares_down(128) +
# 2 x ares(128); alevel1 = ares_down(256) + 2 x ares(256); alevel0 = ares_down(256).
_UNITS: tuple[tuple[int, int, bool], ...] = (
    *((32, 32, False),) * 3,
    (32, 64, True),
    *((64, 64, False),) * 3,
    (64, 128, True),
    *((128, 128, False),) * 2,
    (128, 256, True),
    *((256, 256, False),) * 2,
    (256, 256, True),
)


# --------------------------------------------------------------------------------------------
# The network


class Affine(nn.Module):
    """dlib's `affine` layer in CONV_MODE: y = gamma * x + beta per channel (BN already folded)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma[:, None, None] + self.beta[:, None, None]


def add_prev(a: Tensor, b: Tensor) -> Tensor:
    """dlib's `add_prev` (tt::add): the output takes the larger of each of C, H, W and each
    input is zero-padded at the end. This is how the residual shortcut grows its channels and
    why, at 8x8 and 4x4, the unpadded stride-2 branch only covers the top-left corner."""
    channels = max(a.shape[1], b.shape[1])
    rows = max(a.shape[2], b.shape[2])
    cols = max(a.shape[3], b.shape[3])

    def grow(t: Tensor) -> Tensor:
        pad = (0, cols - t.shape[3], 0, rows - t.shape[2], 0, channels - t.shape[1])
        return F.pad(t, pad) if any(pad) else t

    return grow(a) + grow(b)


class ResidualUnit(nn.Module):
    """`ares` (identity shortcut) or `ares_down` (2x2 average-pool shortcut, stride-2 branch).

    dlib's default padding is k//2 for stride 1 and 0 otherwise, so the stride-2 conv is
    unpadded: keep it that way or the descriptors drift.
    """

    def __init__(self, in_channels: int, out_channels: int, down: bool) -> None:
        super().__init__()
        self.down = down
        stride = 2 if down else 1
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=0 if down else 1)
        self.affine1 = Affine(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1)
        self.affine2 = Affine(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        branch = F.relu(self.affine1(self.conv1(x)))
        branch = self.affine2(self.conv2(branch))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_prev(shortcut, branch))


class DlibResNet(nn.Module):
    """(N, 3, 150, 150) normalised chips -> (N, 128) raw (not L2-normalised) descriptors."""

    input_means: Tensor  # dlib's per-channel (R, G, B) input means, kept with the weights

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("input_means", torch.zeros(3))
        self.stem_conv = nn.Conv2d(3, _STEM_CHANNELS, 7, 2, padding=0)
        self.stem_affine = Affine(_STEM_CHANNELS)
        self.units = nn.ModuleList(ResidualUnit(i, o, d) for i, o, d in _UNITS)
        self.fc = nn.Linear(_UNITS[-1][1], DESCRIPTOR_DIM, bias=False)

    def fuse_affines(self) -> DlibResNet:
        """Folds every affine into the conv before it, for inference (one pass fewer per layer).

        Exact up to float rounding (descriptors move by ~1e-7); call it after loading weights.
        """
        pairs: list[tuple[nn.Module, str, str]] = [(self, "stem_conv", "stem_affine")]
        pairs += [(u, f"conv{i}", f"affine{i}") for u in self.units for i in (1, 2)]
        with torch.no_grad():
            for owner, conv_name, affine_name in pairs:
                conv, affine = getattr(owner, conv_name), getattr(owner, affine_name)
                if not isinstance(affine, Affine):
                    continue
                conv.weight.mul_(affine.gamma[:, None, None, None])
                conv.bias.mul_(affine.gamma).add_(affine.beta)
                setattr(owner, affine_name, nn.Identity())
        return self

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.stem_affine(self.stem_conv(x)))
        x = F.max_pool2d(x, 3, 2)
        for unit in self.units:
            x = unit(x)
        return self.fc(x.mean(dim=(2, 3)))


def normalise_chips(chips: NDArray[np.uint8], means: NDArray[np.float32] | Tensor) -> Tensor:
    """dlib's input_rgb_image_sized: (pixel - channel mean) / 256, as (N, 3, H, W) float32."""
    if chips.ndim != 4 or chips.shape[3] != 3:
        raise ValueError(f"chips must be (N, H, W, 3) uint8, got shape {chips.shape}")
    pixels = torch.from_numpy(np.ascontiguousarray(chips)).permute(0, 3, 1, 2).float()
    mean = torch.as_tensor(means, dtype=torch.float32).reshape(1, 3, 1, 1).to(pixels.device)
    return (pixels - mean) / 256.0


def load_dlib_resnet(cache_dir: Path | None, device: str = "cpu") -> DlibResNet:
    """The descriptor network with dlib's weights, in eval mode on `device`."""
    arrays = load_converted(DLIB_RESNET, parse_resnet, RESNET_CONVERTER_VERSION, cache_dir)
    net = DlibResNet()
    state = {name: torch.from_numpy(np.asarray(value)) for name, value in arrays.items()}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # a cache or converter from another layout
        raise ModelFileError(f"converted dlib ResNet weights do not fit: {exc}") from exc
    # channels_last ran the 3x3 convs ~25% faster on CPU (oneDNN's preferred layout).
    net = net.fuse_affines().to(device)
    return net.to(memory_format=torch.channels_last).eval()


def embed_chips(
    net: DlibResNet, chips: NDArray[np.uint8], batch_size: int = 32
) -> NDArray[np.float32]:
    """(N, 150, 150, 3) uint8 aligned chips -> (N, 128) float32 descriptors, in batches."""
    if chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
        raise ValueError(f"chips must be (N, {CHIP_SIZE}, {CHIP_SIZE}, 3), got {chips.shape}")
    device = net.input_means.device
    out = np.empty((len(chips), DESCRIPTOR_DIM), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(chips), batch_size):
            batch = normalise_chips(chips[start : start + batch_size], net.input_means.cpu())
            batch = batch.to(device, memory_format=torch.channels_last)
            out[start : start + len(batch)] = net(batch).float().cpu().numpy()
    return out


# --------------------------------------------------------------------------------------------
# The file


@dataclass(frozen=True)
class _Node:
    """One wrapper of the C++ network type, listed input to output."""

    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, fc, tag (tag or skip)
    name: str = ""  # state_dict prefix for layers with weights
    shape: tuple[int, ...] = ()  # con: (filters, k, stride, pad); pool: (k, stride)


def _unit_nodes(index: int, in_ch: int, out_ch: int, down: bool) -> list[_Node]:
    prefix = f"units.{index}"
    stride, pad = (2, 0) if down else (1, 1)
    block = [
        _Node("tag"),  # tag1 on the unit's input
        _Node("con", f"{prefix}.conv1", (out_ch, 3, stride, pad)),
        _Node("affine", f"{prefix}.affine1"),
        _Node("relu"),
        _Node("con", f"{prefix}.conv2", (out_ch, 3, 1, 1)),
        _Node("affine", f"{prefix}.affine2"),
    ]
    if down:  # tag2 on the branch, skip1 back to the input, 2x2 average pool
        block += [_Node("tag"), _Node("tag"), _Node("avg_pool", shape=(2, 2))]
    return [*block, _Node("add_prev"), _Node("relu")]


def _expected_nodes() -> list[_Node]:
    nodes = [
        _Node("con", "stem_conv", (_STEM_CHANNELS, 7, 2, 0)),
        _Node("affine", "stem_affine"),
        _Node("relu"),
        _Node("max_pool", shape=(3, 2)),
    ]
    for index, (in_ch, out_ch, down) in enumerate(_UNITS):
        nodes += _unit_nodes(index, in_ch, out_ch, down)
    return [*nodes, _Node("avg_pool", shape=(0, 1)), _Node("fc", "fc")]


def parse_resnet(data: bytes) -> Arrays:
    """dlib_face_recognition_resnet_model_v1.dat -> DlibResNet state_dict arrays."""
    reader = DlibReader(data, DLIB_RESNET.relative_path)
    nodes = _expected_nodes()
    reader.expect_int(1)  # add_loss_layer version
    reader.expect_string("loss_metric_2")
    _margin, _threshold = reader.float(), reader.float()  # training-only
    _read_wrapper_versions(reader, nodes)
    arrays: Arrays = {"input_means": _read_input(reader)}
    layers = [node for node in nodes if node.kind != "tag"]
    for position, node in enumerate(layers):
        arrays.update(_read_layer(reader, node))
        _read_layer_state(reader, bottom=position == 0)
    if not reader.at_end:
        raise ModelFileError(f"{reader.name}: {len(data) - reader.pos} unexpected trailing bytes")
    log.debug("parsed dlib ResNet: %d arrays", len(arrays))
    return arrays


def _read_wrapper_versions(reader: DlibReader, nodes: list[_Node]) -> None:
    """Output to input, one version int per wrapper: 2 layer, 1 tag/skip, 3 the bottom layer."""
    for depth, node in enumerate(reversed(nodes)):
        if node.kind == "tag":
            expected = 1
        else:
            expected = 3 if depth == len(nodes) - 1 else 2
        found = reader.int()
        if found != expected:
            raise ModelFileError(
                f"{reader.name}: not dlib's face ResNet (wrapper {depth} from the top has "
                f"version {found}, expected {expected} for a {node.kind} layer)"
            )


def _read_input(reader: DlibReader) -> NDArray[np.float32]:
    reader.expect_string("input_rgb_image_sized")
    means = np.array([reader.float() for _ in range(3)], dtype=np.float32)
    size = (reader.int(), reader.int())
    if size != (CHIP_SIZE, CHIP_SIZE):
        raise ModelFileError(f"{reader.name}: input is {size}, expected 150x150")
    return means


def _read_layer_state(reader: DlibReader, bottom: bool) -> None:
    """The add_layer fields after the details: three flags and (empty) gradient tensors."""
    for _ in range(3):
        reader.bool()
    for _ in range(3):  # x_grad, cached_output, then params_grad (grad_final at the bottom)
        reader.tensor()
    if bottom:
        reader.int()  # sample_expansion_factor


def _read_layer(reader: DlibReader, node: _Node) -> dict[str, NDArray[np.float32]]:
    readers = {
        "con": _read_con,
        "affine": _read_affine,
        "relu": _read_relu,
        "max_pool": _read_pool,
        "avg_pool": _read_pool,
        "add_prev": _read_add_prev,
        "fc": _read_fc,
    }
    return readers[node.kind](reader, node)


def _mismatch(reader: DlibReader, node: _Node, what: str) -> ModelFileError:
    return ModelFileError(f"{reader.name}: layer {node.name or node.kind} {what}")


def _read_con(reader: DlibReader, node: _Node) -> dict[str, NDArray[np.float32]]:
    version = reader.expect_string("con_4", "con_5", "con_6")
    params = reader.tensor().ravel()
    filters, rows, cols = reader.int(), reader.int(), reader.int()
    stride_y, stride_x, pad_y, pad_x = (reader.int() for _ in range(4))
    weight_shape, bias_shape = reader.alias_tensor(), reader.alias_tensor()
    for _ in range(4):
        reader.float()  # learning-rate and weight-decay multipliers
    use_bias = reader.bool() if version != "con_4" else True
    if version == "con_6":
        reader.bool()  # use_relu: fused relu, not used by this network
    out_ch, kernel, stride, pad = node.shape
    found = (filters, rows, cols, stride_y, stride_x, pad_y, pad_x)
    if found != (out_ch, kernel, kernel, stride, stride, pad, pad):
        raise _mismatch(reader, node, f"has {filters} {rows}x{cols}/{stride_y} pad {pad_y} filters")
    shape = (weight_shape.n, weight_shape.k, weight_shape.nr, weight_shape.nc)
    count = int(np.prod(shape))
    if not use_bias or params.size != count + out_ch or bias_shape.k != out_ch:
        raise _mismatch(reader, node, f"has {params.size} parameters for filters {shape}")
    return {
        f"{node.name}.weight": params[:count].reshape(shape).copy(),
        f"{node.name}.bias": params[count:].copy(),
    }


def _read_affine(reader: DlibReader, node: _Node) -> dict[str, NDArray[np.float32]]:
    version = reader.expect_string("affine_", "affine_2")
    params = reader.tensor().ravel()
    gamma, _beta = reader.alias_tensor(), reader.alias_tensor()
    mode = reader.int()
    disabled = reader.bool() if version == "affine_2" else False
    if mode != 0 or disabled or params.size != 2 * gamma.k:
        raise _mismatch(reader, node, f"is not a per-channel affine (mode {mode})")
    return {f"{node.name}.gamma": params[: gamma.k].copy(), f"{node.name}.beta": params[gamma.k :]}


def _read_relu(reader: DlibReader, node: _Node) -> dict[str, NDArray[np.float32]]:
    if reader.expect_string("relu_", "relu_2") == "relu_2" and reader.bool():
        raise _mismatch(reader, node, "is disabled")
    return {}


def _read_pool(reader: DlibReader, node: _Node) -> dict[str, NDArray[np.float32]]:
    reader.expect_string("max_pool_2" if node.kind == "max_pool" else "avg_pool_2")
    rows, cols, stride_y, stride_x, pad_y, pad_x = (reader.int() for _ in range(6))
    kernel, stride = node.shape
    if (rows, cols, stride_y, stride_x, pad_y, pad_x) != (kernel, kernel, stride, stride, 0, 0):
        raise _mismatch(reader, node, f"is {rows}x{cols}/{stride_y} pad {pad_y}")
    return {}


def _read_add_prev(reader: DlibReader, node: _Node) -> dict[str, NDArray[np.float32]]:
    reader.expect_string("add_prev_")
    return {}


def _read_fc(reader: DlibReader, node: _Node) -> dict[str, NDArray[np.float32]]:
    version = reader.expect_string("fc_2", "fc_3")
    outputs, inputs = reader.int(), reader.int()
    params = reader.tensor().ravel()
    _weights, _biases = reader.alias_tensor(), reader.alias_tensor()
    bias_mode = reader.int()
    for _ in range(4):
        reader.float()
    use_bias = reader.bool() if version == "fc_3" else bias_mode == 0
    if (outputs, inputs) != (DESCRIPTOR_DIM, _UNITS[-1][1]) or use_bias or bias_mode != 1:
        raise _mismatch(reader, node, f"is {inputs}->{outputs} (bias mode {bias_mode})")
    if params.size != inputs * outputs:
        raise _mismatch(reader, node, f"has {params.size} parameters")
    # dlib computes y = x . W with W stored (inputs, outputs); torch wants W transposed.
    return {f"{node.name}.weight": params.reshape(inputs, outputs).T.copy()}
