"""`matcher eval --fit-only`: the service's regime, in which a sighting is searched only by a
face fit for matching, on a small real protocol (four FG-NET children, forty LFW people)."""

from __future__ import annotations

import numpy as np

from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.eval.crossage import evaluate, largest_faces, protocol_photos
from matcher.eval.manifest import read_manifest
from matcher.eval.protocol import build_protocol
from matcher.wiring import load_pipeline
from tests.data import require_test_data


def test_fit_only_leaves_unsearched_the_searches_whose_face_is_unfit(settings: Settings) -> None:
    data = require_test_data()
    cross_age = read_manifest(data / "fgnet-dev/manifest.csv", require_age=True)
    children = sorted({p.identity for p in cross_age})[:4]
    protocol = build_protocol([p for p in cross_age if p.identity in children],
                              read_manifest(data / "lfw-dev/manifest.csv")[:40])
    base = load_pipeline(settings)
    faces = largest_faces(base, protocol_photos(protocol))
    gallery_n, sighting_n = len(protocol.gallery), len(protocol.sightings)
    # A sharpness bar at the median of the searches' faces: about half of them become unfit.
    bar = float(np.median([f.quality.sharpness for f in faces[gallery_n:] if f is not None]))
    strict = settings.model_copy(update={"min_sharpness": bar})
    pipeline = FacePipeline(strict, base.detector, base.embedder)  # same networks, stricter

    def unfit(start: int, stop: int) -> int:
        return sum(f is not None and (not f.quality.fit or f.quality.sharpness < bar)
                   for f in faces[start:stop])

    every = evaluate(protocol, pipeline, strict)
    fit = evaluate(protocol, pipeline, strict, fit_only=True)
    assert fit.fit_only and not every.fit_only
    unsearched = {key: fit.counts[key] - every.counts[key] for key in
                  ("faces_not_found_gallery", "faces_not_found_sightings",
                   "faces_not_found_non_mated")}
    assert unsearched == {
        "faces_not_found_gallery": 0,  # case photos are indexed fit or not, as in the service
        "faces_not_found_sightings": unfit(gallery_n, gallery_n + sighting_n),
        "faces_not_found_non_mated": unfit(gallery_n + sighting_n, len(faces)),
    }
    assert unsearched["faces_not_found_sightings"] > 0
    assert fit.rank1 <= every.rank1
