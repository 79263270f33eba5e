"""Stores filled in bulk for the benchmarks: synthetic case faces for the service's.

SQLAlchemy Core inserts thousands of rows at a time: registering 100,000 cases through the
service would take hours, and what is measured (a search among them) does not depend on how the
rows came in. The photo rows name files that do not exist: no benchmark reads them.
"""

from __future__ import annotations

import datetime as dt
import secrets

import numpy as np
from sqlalchemy import func, insert, select

from matcher.bench import synthetic
from matcher.config import Settings
from matcher.store import make_engine, migrate
from matcher.store.models import Case, CasePhoto, Face, FaceVector, Sighting
from matcher.store.photos import photo_path
from matcher.vocabulary import CaseStatus, Category, Sex

STEP = 10_000  # rows per INSERT
LANDMARKS = [[100.0, 120.0], [110.0, 120.0], [140.0, 120.0], [150.0, 120.0], [125.0, 150.0]]
FACE = {"box": [70.0, 70.0, 180.0, 180.0], "landmarks": LANDMARKS, "score": 0.95,
        "size_px": 110.0, "sharpness": 30.0, "unfit_reasons": [], "fit": True}


def fill_case_faces(
    settings: Settings, n_faces: int, model: synthetic.FaceModel, model_id: str, seed: int
) -> int:
    """n_faces synthetic active case faces of the model, one per case photo, cases of 1-5
    photos, children and elderly alternately; returns the number of cases."""
    engine = make_engine(settings)
    migrate(engine)
    data = synthetic.collection(model, n_faces, seed=seed)
    owners = data.owners
    n_cases = int(owners.max()) + 1
    rng = np.random.default_rng(seed)
    categories = (Category.CHILD, Category.ELDERLY)
    with engine.begin() as connection:
        for start in range(0, n_cases, STEP):
            connection.execute(insert(Case), [
                {"id": i + 1, "category": categories[i % 2], "name": f"synthetic {i + 1}",
                 "sex": Sex.UNKNOWN, "age_when_missing": float(rng.integers(1, 90)),
                 "missing_since": dt.date(2020, 1, 1), "status": CaseStatus.ACTIVE,
                 "public_fields": []}
                for i in range(start, min(start + STEP, n_cases))])
        for start in range(0, n_faces, STEP):
            ids = range(start, min(start + STEP, n_faces))
            sha = [f"{secrets.token_hex(28)}{i:08x}" for i in ids]
            connection.execute(insert(CasePhoto), [
                {"id": i + 1, "case_id": int(owners[i]) + 1, "sha256": s, "path": photo_path(s),
                 "width": 250, "height": 250} for i, s in zip(ids, sha, strict=True)])
            connection.execute(insert(Face), [
                {"id": i + 1, "case_photo_id": i + 1, **FACE} for i in ids])
            connection.execute(insert(FaceVector), [
                {"face_id": i + 1, "model_id": model_id, "dim": data.vectors.shape[1],
                 "descriptor": data.vectors[i].astype("<f4").tobytes()} for i in ids])
    engine.dispose()
    return n_cases


def count_sightings(settings: Settings) -> int:
    """The sightings the store holds: after a run, exactly the acknowledged uploads."""
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(Sighting)).scalar_one())
    finally:
        engine.dispose()

