"""dlib's own pipeline on the cross-age dev protocol (issue 8's reference row), re-measured,
and what the reference's threshold allows: the rows behind docs/accuracy-2026-11.md,
"The reference, measured again" (scripts/dlib_reference.py runs it).

dlib itself (dlib-bin, a dev dependency; never our port): the CNN (mmod) detector upsampling
each photo `upsample` times, the largest face, dlib's 5 landmarks, the ResNet descriptor
(no jitter), on every protocol photo in two processes. The default model's descriptors come
from the project's pipeline (`matcher eval`'s). Both are scored by `matcher eval`'s index and
metrics (`evaluate_vectors`):
* each at the protocol's rule: at most 1% of the non-mated searches (4 of 435) have a closer
  candidate;
* dlib under the reference's threshold (0.465, from issue 8), with the number of non-mated
  searches it lets through;
* the default at that same number of non-mated searches let through (the same FPIR).
Slow: dlib's detector in C++ without BLAS takes about an hour of one core per pass over the
1,092 photos (30 min on 2 cores); seconds again with a cache. dlib is imported in the worker
processes only, where it is measured, never with the package.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from matcher.config import Settings
from matcher.embed.weights import DLIB_MMOD, DLIB_RESNET, DLIB_SHAPE5
from matcher.eval.crossage import (
    CrossAgeReport,
    embed_largest_faces,
    evaluate_vectors,
    protocol_photos,
)
from matcher.eval.manifest import read_manifest
from matcher.eval.metrics import FPIR
from matcher.eval.protocol import GAP_BANDS, Protocol, build_protocol
from matcher.wiring import load_pipeline

log = logging.getLogger(__name__)

REFERENCE_THRESHOLD = 0.465  # issue 8: "dlib reference ... TPIR 0.302 (threshold 0.465)"
_dlib: dict[str, Any] = {}  # per worker process: dlib's three models, loaded once


def _load_dlib(upsample: int) -> None:
    import dlib  # a dev dependency: imported only where dlib itself is measured

    _dlib.update(detector=dlib.cnn_face_detection_model_v1(str(DLIB_MMOD.path())),
                 landmarks=dlib.shape_predictor(str(DLIB_SHAPE5.path())),
                 descriptor=dlib.face_recognition_model_v1(str(DLIB_RESNET.path())),
                 upsample=upsample)


def _dlib_descriptor(path: str) -> NDArray[np.float32] | None:
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    found = _dlib["detector"](rgb, _dlib["upsample"])
    if not found:
        return None
    largest = max(found, key=lambda d: d.rect.width() * d.rect.height()).rect
    shape = _dlib["landmarks"](rgb, largest)
    return np.array(_dlib["descriptor"].compute_face_descriptor(rgb, shape), np.float32)


def dlib_vectors(paths: Sequence[str], upsample: int) -> NDArray[np.float32]:
    """(N, 128) dlib descriptors of each photo's largest face; NaN where none was found."""
    out = np.full((len(paths), 128), np.nan, np.float32)
    with Pool(2, initializer=_load_dlib, initargs=(upsample,)) as pool:
        for n, vector in enumerate(pool.imap(_dlib_descriptor, paths, chunksize=4)):
            if vector is not None:
                out[n] = vector
            if n % 100 == 0:
                log.info("dlib: %d/%d", n, len(paths))
    return out


def default_vectors(protocol: Protocol) -> NDArray[np.float32]:
    """The project's pipeline's descriptors of each protocol photo's largest face (NaN where
    none was found), as `matcher eval` embeds them."""
    pipeline = load_pipeline(Settings(projection_file="none"))  # the plain vectors: the shipped
    # distance was fitted on these people (docs/accuracy.md measures it person-disjoint)
    found = embed_largest_faces(pipeline, protocol_photos(protocol))
    dim = pipeline.embedder.dim
    return np.stack([np.full(dim, np.nan, np.float32) if v is None else v for v in found])


def as_row(label: str, report: CrossAgeReport) -> dict[str, Any]:
    counts = report.counts
    return {"row": label, "rank1": report.rank1, "rank10": report.rank10,
            "tpir": report.tpir_at_fpir_1pct, "threshold": report.threshold,
            "tpir_hits": round(report.tpir_at_fpir_1pct * counts["sightings"]),
            "sightings": counts["sightings"], "false_alarms": counts["false_alarms"],
            "non_mated": counts["non_mated"],
            "rank1_by_gap": [report.by_gap[b]["rank1"] for b in GAP_BANDS]}


def rows(protocol: Protocol, dlib: NDArray[np.float32], default: NDArray[np.float32]
         ) -> list[dict[str, Any]]:
    """dlib and the default at the protocol's rule; dlib under the reference's threshold; the
    default at the FPIR that threshold let through."""
    settings = Settings()

    def score(vectors: NDArray[np.float32], model: str, fpir: float = FPIR,
              threshold: float | None = None) -> CrossAgeReport:
        found = [None if np.isnan(v).any() else v for v in vectors]
        return evaluate_vectors(protocol, found, settings, model, vectors.shape[1],
                                fpir=fpir, threshold=threshold)

    at_reference = score(dlib, "dlib", threshold=REFERENCE_THRESHOLD)
    alarms = at_reference.counts["false_alarms"]
    # fpir_threshold allows floor(fpir * searches) alarms: half a search above `alarms`
    # makes the floor exact whatever the rounding of the division.
    same_fpir = (alarms + 0.5) / len(protocol.probes)
    return [
        as_row("dlib itself, protocol rule (1% FPIR)", score(dlib, "dlib")),
        as_row(f"dlib itself, reference's threshold {REFERENCE_THRESHOLD}", at_reference),
        as_row("default, protocol rule (1% FPIR)", score(default, "default")),
        as_row(f"default, at the reference threshold's FPIR ({alarms} non-mated searches)",
               score(default, "default", fpir=same_fpir)),
    ]


class StaleReferenceCache(ValueError):
    """The descriptor cache was made from other photos or another upsampling."""


def measure(cross_age_manifest: Path, distractors_manifest: Path, upsample: int = 1,
            cache: Path | None = None) -> list[dict[str, Any]]:
    """Every row, from both models' descriptors: embedded (and written to `cache`, when one is
    named), or read from the cache when it holds them."""
    protocol = build_protocol(read_manifest(cross_age_manifest, require_age=True),
                              read_manifest(distractors_manifest))
    paths = np.array([str(p.path) for p in protocol_photos(protocol)])
    if cache and cache.is_file():
        cached = np.load(cache)
        if not np.array_equal(cached["paths"], paths) or int(cached["upsample"]) != upsample:
            raise StaleReferenceCache(f"{cache} was made from other photos or settings: "
                                      "delete it")
        dlib, default = cached["dlib"], cached["default"]
    else:
        dlib = dlib_vectors(list(paths), upsample)
        default = default_vectors(protocol)
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, paths=paths, upsample=upsample, dlib=dlib, default=default)
    return rows(protocol, dlib, default)


def table(measured: Sequence[dict[str, Any]]) -> str:
    """The rows as the markdown table docs/accuracy-2026-11.md quotes."""
    lines = ["| row | rank-1 | rank-10 | TPIR (hits) | threshold | non-mated searches under it "
             "(FPIR) | rank-1 by gap |",
             "|---|---|---|---|---|---|---|"]
    for r in measured:
        gaps = " / ".join(f"{x:.2f}" for x in r["rank1_by_gap"])
        lines.append(f"| {r['row']} | {r['rank1']:.3f} | {r['rank10']:.3f} | {r['tpir']:.3f} "
                     f"({r['tpir_hits']}/{r['sightings']}) | {r['threshold']:.3f} | "
                     f"{r['false_alarms']} of {r['non_mated']} "
                     f"({r['false_alarms'] / r['non_mated']:.2%}) | {gaps} |")
    return "\n".join(lines)
