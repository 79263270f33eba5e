"""Real descriptors of the research photos, computed once per model and cached: what the
synthetic faces of the index and service benchmarks are fitted to (matcher.bench.synthetic).

Uniform random vectors make approximate search look far worse than it is on faces; a Gaussian
fitted to real descriptors has their structure, and reaches a million faces that no data set
of children has.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from matcher.bench import synthetic
from matcher.config import Settings

log = logging.getLogger(__name__)

# Where benchmarks keep what they compute once (descriptors, the weight cache): bench-out/ of
# the checkout they run from, as the research photos are found beside it.
BENCH_OUT = Path(__file__).resolve().parents[2] / "bench-out"
SETS = ("lfw-dev", "fgnet-dev")
BATCH = 16


def compute_descriptors(data_root: Path, out: Path, settings: Settings) -> None:
    """One descriptor per photo (its largest face) of lfw-dev and fgnet-dev, with identities
    and the model id, written to `out` (.npz: vectors, identities, model_id)."""
    from matcher.embed.image import load_image
    from matcher.wiring import load_pipeline

    pipeline = load_pipeline(settings)
    vectors, identities = [], []
    for name in SETS:
        with (data_root / name / "manifest.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        for start in range(0, len(rows), BATCH):
            batch = rows[start : start + BATCH]
            images = [load_image((data_root / name / row["path"]).read_bytes(),
                                 max_bytes=settings.max_image_bytes,
                                 max_pixels=settings.max_image_pixels) for row in batch]
            for row, faces in zip(batch, pipeline.process(images), strict=True):
                if faces:
                    face = max(faces, key=lambda f: f.box[2] - f.box[0])
                    vectors.append(face.vector)
                    identities.append(row["identity"])
            log.info("%s: %d/%d photos", name, start + len(batch), len(rows))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, vectors=np.stack(vectors).astype(np.float32), identities=np.array(identities),
             model_id=np.array(pipeline.model_id))


def cached_face_model(
    descriptors: Path, data_root: Path, settings: Settings
) -> tuple[synthetic.FaceModel, str | None]:
    """The synthetic face model fitted to the cached descriptors, and their model id (None in
    a file made without one); computed into `descriptors` first when it is missing."""
    if not descriptors.is_file():
        log.info("computing real descriptors for the synthetic faces into %s", descriptors)
        compute_descriptors(data_root, descriptors, settings)
    with np.load(descriptors, allow_pickle=False) as cached:
        model_id = str(cached["model_id"]) if "model_id" in cached.files else None
        return synthetic.fit(cached["vectors"], cached["identities"]), model_id


def descriptors_file(model_id: str) -> Path:
    """Where a model's descriptors are cached: dlib's in bench-out/descriptors.npz (the index
    benchmark's default), another model's beside it under its id."""
    name = "descriptors.npz" if model_id == "dlib-resnet-v1" else f"descriptors-{model_id}.npz"
    return BENCH_OUT / name
