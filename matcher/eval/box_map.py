"""The YuNet -> dlib-mmod box map of matcher.embed.yunet.dlib_box_from_yunet, fitted on the dev
photos (scripts/fit_yunet_box_map.py runs it).

dlib's 5-point landmark model was trained on boxes from dlib's mmod CNN detector, so a YuNet
detection must be turned into the box mmod would have given. Both detectors run on LFW-dev and
FG-NET-dev photos, their faces are paired by IoU, and a square box is fitted whose side and
centre offset are proportional to a YuNet size measure (robust medians). For a few size
measures, `fits` gives the coefficients and the residuals (IoU of the mapped box with mmod's,
centre and side errors); the chosen line is hard-coded in yunet.py. dlib, a dev dependency, is
imported only while the pairs are collected.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from matcher.embed.types import Detection
from matcher.embed.weights import DLIB_MMOD
from matcher.embed.yunet import YuNetDetector

log = logging.getLogger(__name__)


def collect(data: Path, limit_lfw: int, limit_fgnet: int) -> tuple[np.ndarray, np.ndarray]:
    """The paired detections (`collect_pairs`) of every k-th photo of LFW-dev and FG-NET-dev."""
    detector = YuNetDetector.load(None)
    paths = photo_paths(data, "lfw-dev", limit_lfw) + photo_paths(data, "fgnet-dev", limit_fgnet)
    log.info("running YuNet and dlib mmod (upsample 0) on %d photos", len(paths))
    return collect_pairs(paths, detector)


def fits(yunet: np.ndarray, mmod: np.ndarray) -> list[str]:
    """A line per anchor and size measure: its fitted map and residuals."""
    return [report(name, yunet, mmod, size, centre) for centre in ("box", "keypoint")
            for name, size in size_measures(yunet).items()]


def photo_paths(root: Path, name: str, limit: int) -> list[Path]:
    """Every k-th photo of a dev set's manifest (spread over identities and ages)."""
    with (root / name / "manifest.csv").open(newline="") as handle:
        rows = [root / name / row["path"] for row in csv.DictReader(handle)]
    step = max(1, len(rows) // max(1, limit))
    return rows[::step][:limit]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (N, 4) boxes a with (N, 4) boxes b, continuous (left, top, right, bottom)."""
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a + area_b - inter)


def collect_pairs(paths: list[Path], detector: YuNetDetector) -> tuple[np.ndarray, np.ndarray]:
    """(N, 14) YuNet rows [box(4), keypoints(10)] and (N, 4) mmod boxes, matched by IoU >= 0.3.

    mmod rectangles are inclusive; they are returned as continuous boxes (right + 1, bottom + 1).
    """
    import dlib

    mmod = dlib.cnn_face_detection_model_v1(str(DLIB_MMOD.path()))
    yunet_rows, mmod_rows = [], []
    started = time.time()
    for n, path in enumerate(paths, 1):
        image = np.asarray(PILImage.open(path).convert("RGB"))
        ours = detector.detect([image])[0]
        theirs = [d.rect for d in mmod(image, 0)]
        if ours and theirs:
            ours_boxes = np.array([d.box for d in ours], dtype=np.float64)
            for rect in theirs:
                box = np.array([[rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1]])
                overlaps = iou(np.repeat(box, len(ours), 0).astype(np.float64), ours_boxes)
                best = int(np.argmax(overlaps))
                if overlaps[best] >= 0.3:
                    det: Detection = ours[best]
                    assert det.keypoints is not None
                    yunet_rows.append(np.concatenate([det.box, det.keypoints.ravel()]))
                    mmod_rows.append(box[0])
        if n % 50 == 0:
            log.info("  %d/%d photos, %d pairs, %.0f s", n, len(paths), len(mmod_rows),
                     time.time() - started)
    return np.array(yunet_rows, dtype=np.float64), np.array(mmod_rows, dtype=np.float64)


def size_measures(yunet: np.ndarray) -> dict[str, np.ndarray]:
    """Candidate YuNet face-size measures a square mmod box could scale with."""
    width, height = yunet[:, 2] - yunet[:, 0], yunet[:, 3] - yunet[:, 1]
    points = yunet[:, 4:].reshape(-1, 5, 2)
    eyes, mouth = points[:, :2].mean(1), points[:, 3:].mean(1)
    return {
        "width": width,
        "height": height,
        "sqrt(w*h)": np.sqrt(width * height),
        "eye-mouth dist": np.linalg.norm(mouth - eyes, axis=1),
    }


def anchor(yunet: np.ndarray, centre: str) -> np.ndarray:
    """(N, 2) reference point: YuNet's box centre, or the midpoint of eye and mouth centres."""
    if centre == "box":
        return np.stack([(yunet[:, 0] + yunet[:, 2]) / 2, (yunet[:, 1] + yunet[:, 3]) / 2], 1)
    points = yunet[:, 4:].reshape(-1, 5, 2)
    return (points[:, :2].mean(1) + points[:, 3:].mean(1)) / 2


def fit(
    yunet: np.ndarray, mmod: np.ndarray, size: np.ndarray, centre: str
) -> tuple[float, float, float]:
    """Median side ratio and median centre offsets (in units of `size`) from the anchor."""
    centre_xy = anchor(yunet, centre)
    target = np.stack([(mmod[:, 0] + mmod[:, 2]) / 2, (mmod[:, 1] + mmod[:, 3]) / 2], 1)
    side = np.sqrt((mmod[:, 2] - mmod[:, 0]) * (mmod[:, 3] - mmod[:, 1]))
    dx, dy = np.median((target - centre_xy) / size[:, None], axis=0)
    return float(np.median(side / size)), float(dx), float(dy)


def apply(
    yunet: np.ndarray, size: np.ndarray, coef: tuple[float, float, float], centre: str
) -> np.ndarray:
    """The square boxes the fitted map draws from YuNet's detections."""
    scale, dx, dy = coef
    centre_xy = anchor(yunet, centre)
    cx, cy = centre_xy[:, 0] + dx * size, centre_xy[:, 1] + dy * size
    half = scale * size / 2
    return np.stack([cx - half, cy - half, cx + half, cy + half], 1)


def report(name: str, yunet: np.ndarray, mmod: np.ndarray, size: np.ndarray, centre: str) -> str:
    """One size measure's map, fitted, and its residuals against mmod's boxes, in one line."""
    coef = fit(yunet, mmod, size, centre)
    mapped = apply(yunet, size, coef, centre)
    overlaps = iou(mapped, mmod)
    mmod_side = np.sqrt((mmod[:, 2] - mmod[:, 0]) * (mmod[:, 3] - mmod[:, 1]))
    centre_err = (
        np.hypot(
            (mapped[:, 0] + mapped[:, 2] - mmod[:, 0] - mmod[:, 2]) / 2,
            (mapped[:, 1] + mapped[:, 3] - mmod[:, 1] - mmod[:, 3]) / 2,
        )
        / mmod_side
    )
    side_err = np.abs((mapped[:, 2] - mapped[:, 0]) / mmod_side - 1)
    return (
        f"{name:>15} from {centre:>9} centre: side={coef[0]:.4f} dx={coef[1]:+.4f} "
        f"dy={coef[2]:+.4f} | IoU median "
        f"{np.median(overlaps):.3f} mean {overlaps.mean():.3f} p5 {np.percentile(overlaps, 5):.3f}"
        f" | centre err/side median {np.median(centre_err):.3f} p95 "
        f"{np.percentile(centre_err, 95):.3f} | side err median {np.median(side_err):.3f} p95 "
        f"{np.percentile(side_err, 95):.3f}"
    )
