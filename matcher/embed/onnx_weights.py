"""Constant folding of quantised ONNX weights: the fp32 arrays an ONNX file's graph would use.

The OpenCV-zoo files we read (YuNet, SFace) store their weights int8 block-quantised (opset 21
DequantizeLinear with `block_size`), sometimes flattened and reshaped back by a Reshape node.
Folding those constant subgraphs gives the fp32 weights once; the networks themselves are
hand-written torch modules. `onnx` is imported only here, only when a file is converted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from onnx import GraphProto, NodeProto


def dequantize(
    quantized: NDArray[np.generic],
    scale: NDArray[np.generic],
    zero_point: NDArray[np.generic] | None,
    axis: int,
    block_size: int,
) -> NDArray[np.float32]:
    """ONNX DequantizeLinear: per-tensor, per-axis, or blocked (opset 21) quantisation.

    Blocked: each scale covers `block_size` consecutive entries along `axis` (the last block may
    be short). Like onnxruntime, (q - zero_point) is exact in int and the product is fp32.
    """
    q = quantized.astype(np.int32)
    zero = np.zeros(scale.shape, np.int32) if zero_point is None else zero_point.astype(np.int32)
    if scale.ndim > 0:
        axis %= q.ndim
        if block_size > 0:
            block_of = np.arange(q.shape[axis]) // block_size
            scale, zero = np.take(scale, block_of, axis=axis), np.take(zero, block_of, axis=axis)
        else:
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (q - zero).astype(np.float32) * scale.astype(np.float32)


def node_attributes(node: NodeProto) -> dict[str, object]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def constant_values(graph: GraphProto) -> dict[str, NDArray[np.generic]]:
    """Initializers plus the outputs of constant DequantizeLinear/Reshape nodes."""
    from onnx import numpy_helper

    values: dict[str, NDArray[np.generic]] = {
        init.name: numpy_helper.to_array(init) for init in graph.initializer
    }
    for node in graph.node:
        if not all(name in values for name in node.input if name):
            continue
        attrs = node_attributes(node)
        if node.op_type == "DequantizeLinear":
            zero = values[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            values[node.output[0]] = dequantize(
                values[node.input[0]],
                values[node.input[1]],
                zero,
                int(attrs.get("axis", 1)),  # type: ignore[call-overload]
                int(attrs.get("block_size", 0)),  # type: ignore[call-overload]
            )
        elif node.op_type == "Reshape":
            shape = [int(v) for v in values[node.input[1]]]
            values[node.output[0]] = values[node.input[0]].reshape(shape)
    return values
