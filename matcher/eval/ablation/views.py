"""The views of each photo's largest face that the ablation embeds: the colour chip as the
default pipeline cuts it, and variants of it (grayscale, contrast-stretched, CLAHE, SFace chips
at 0.95 / 1.05 of the template's scale, dlib chips cut around jittered landmarks), each
flip-averaged like the default, and the default's vector combined from any of them.

Detection and alignment run once per photo, as the default pipeline does them; only the chips
change, so a row's difference from the default is the chip's alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from matcher.config import Settings
from matcher.embed import sface
from matcher.embed.embedder import EnsembleEmbedder, average_views, combine
from matcher.embed.image import load_image
from matcher.eval.manifest import LabelledPhoto
from matcher.wiring import load_pipeline

log = logging.getLogger(__name__)

Chips = NDArray[np.uint8]
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
SFACE_SCALES = (0.95, 1.05)
# dlib chip jitters (scale, degrees, sideways shift): each averaged with the plain chip.
DLIB_JITTERS = ((0.95, 0.0, 0.0), (1.05, 0.0, 0.0), (1.0, -4.0, 0.0), (1.0, 4.0, 0.0),
                (1.0, 0.0, -0.03), (1.0, 0.0, 0.03))


def gray(chips: Chips) -> Chips:
    luma = np.rint(chips.astype(np.float32) @ LUMA).clip(0, 255).astype(np.uint8)
    return np.repeat(luma[..., None], 3, axis=-1)


def stretch(chips: Chips) -> Chips:
    """Each chip's luminance 1st..99th percentile stretched to 0..255 (all channels alike)."""
    out = []
    for chip in chips.astype(np.float32):
        low, high = np.percentile(chip @ LUMA, (1, 99))
        out.append(np.rint((chip - low) * (255 / max(high - low, 1.0))).clip(0, 255))
    return np.stack(out).astype(np.uint8)


def clahe(chips: Chips) -> Chips:
    """Contrast-limited adaptive histogram equalisation of the lightness (clip 2, 4x4 tiles).

    OpenCV comes with the dev extras only: the package imports it here, when the ablation
    runs, never at import."""
    import cv2

    equaliser = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
    out = []
    for chip in chips:
        lab = cv2.cvtColor(np.ascontiguousarray(chip), cv2.COLOR_RGB2LAB)
        lab[..., 0] = equaliser.apply(lab[..., 0])
        out.append(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))
    return np.stack(out)


CHIP_VARIANTS: dict[str, Callable[[Chips], Chips]] = {
    "gray": gray, "stretch": stretch, "clahe": clahe}


def scaled_sface_chip(image: NDArray[np.uint8], keypoints: NDArray[np.float32], scale: float
                      ) -> Chips:
    """SFace's chip zoomed by `scale` about the template's centre (scale > 1: a tighter crop)."""
    centre = sface.ARCFACE_TEMPLATE.mean(axis=0)
    to_chip = np.vstack([sface.arcface_transform(keypoints), [0.0, 0.0, 1.0]])
    zoom = np.array([[scale, 0.0, (1 - scale) * centre[0]],
                     [0.0, scale, (1 - scale) * centre[1]], [0.0, 0.0, 1.0]])
    return sface.warp_affine(image, (zoom @ to_chip)[:2], sface.CHIP_SIZE)[None]


def jittered(landmarks: NDArray[np.float32], scale: float, degrees: float, shift: float
             ) -> NDArray[np.float32]:
    """dlib's 5 landmarks moved by a similarity about their centre: scaled, rotated, and shifted
    sideways by `shift` x their width. The chip cut around them is zoomed, turned and moved the
    opposite way: a fixed stand-in for dlib's random num_jitters."""
    centre = landmarks.mean(axis=0)
    turn = np.radians(degrees)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    width = float(np.ptp(landmarks[:, 0]))
    moved = (landmarks - centre) @ (scale * rotation).T + centre + [shift * width, 0.0]
    return moved.astype(np.float32)


def descriptor_keys() -> list[str]:
    """The views embedded: network/variant."""
    keys = [f"{net}/{v}" for net in ("dlib", "sface") for v in ("colour", *CHIP_VARIANTS)]
    keys += [f"sface/scale{s}" for s in SFACE_SCALES]
    return keys + [f"dlib/jitter{n}" for n in range(len(DLIB_JITTERS))]


def descriptors(photos: Sequence[LabelledPhoto], variant_photos: set[str], settings: Settings
                ) -> dict[str, NDArray[np.float32]]:
    """Each network's descriptor (flip-averaged, unit length) of every photo's largest face,
    (N, 128) per network and chip variant; NaN where no face was found or the variant was not
    run (variants run only on `variant_photos`, the protocol's)."""
    pipeline = load_pipeline(settings)
    ensemble = pipeline.embedder
    if not isinstance(ensemble, EnsembleEmbedder):
        raise TypeError("the ablation starts from the dlib+sface ensemble")
    networks = {"dlib": ensemble.dlib.embed, "sface": ensemble.sface.embed}
    out = {k: np.full((len(photos), 128), np.nan, np.float32) for k in descriptor_keys()}
    batch = settings.detect_batch_size
    for start in range(0, len(photos), batch):
        chunk = photos[start : start + batch]
        images = [load_image(p.path.read_bytes(), max_bytes=settings.max_image_bytes,
                             max_pixels=settings.max_image_pixels) for p in chunk]
        for i, photo, image, found in zip(range(start, start + len(chunk)), chunk, images,
                                          pipeline.detect(images), strict=True):
            if not found:
                continue
            largest = max(found, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
            aligned = ensemble.align(image, [largest], pipeline.detector)
            variants = str(photo.path) in variant_photos
            for (net, embed), chips in zip(networks.items(), aligned.chips, strict=True):
                out[f"{net}/colour"][i] = embed(chips)[0]
                for name, change in CHIP_VARIANTS.items() if variants else ():
                    out[f"{net}/{name}"][i] = embed(change(chips))[0]
            for n, jitter in enumerate(DLIB_JITTERS if variants else ()):
                moved = jittered(aligned.landmarks[0], *jitter)
                out[f"dlib/jitter{n}"][i] = networks["dlib"](
                    ensemble.dlib.chips(image, moved[None]))[0]
            keypoints = np.asarray(largest.keypoints, np.float32).reshape(5, 2)
            for scale in SFACE_SCALES if variants else ():
                out[f"sface/scale{scale}"][i] = networks["sface"](
                    scaled_sface_chip(image, keypoints, scale))[0]
        log.info("embedded %d/%d", min(start + batch, len(photos)), len(photos))
    return out


def chip_variants() -> list[tuple[str, list[str], list[str]]]:
    """(label, dlib's views, SFace's views) of each chip variant measured."""
    return [row for name in CHIP_VARIANTS for row in (
        (f"{name} chips, both networks", [name], [name]),
        (f"colour + {name} chips averaged, both networks", ["colour", name], ["colour", name]),
        (f"{name} chips for dlib only", [name], ["colour"]),
        (f"{name} chips for SFace only", ["colour"], [name]),
    )]


def ensemble_of(raw: dict[str, NDArray[np.float32]], dlib_views: Sequence[str],
                sface_views: Sequence[str]) -> NDArray[np.float32]:
    """The default's vector (1:1) from each network's named views, averaged."""
    def part(net: str, views: Sequence[str]) -> NDArray[np.float32]:
        return average_views(np.stack([raw[f"{net}/{v}"] for v in views]))

    return combine(part("dlib", dlib_views), part("sface", sface_views), 0.5)

