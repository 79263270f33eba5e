"""Stores filled in bulk for the benchmarks: synthetic case faces for the service's, and cases,
sightings and candidates for the review queue's. SQLAlchemy Core inserts thousands of rows at a
time: registering 100,000 cases through the service would take hours, and what is measured (a
search among them, a page of the queue) does not depend on how the rows came in. The photo rows
name files that do not exist: no benchmark reads them.
"""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
from sqlalchemy import Connection, Engine, func, insert, select, text

from matcher.bench import synthetic
from matcher.config import Settings
from matcher.store import migrate
from matcher.store.db import fresh_database
from matcher.store.models import Candidate, Case, CasePhoto, Face, FaceVector, Sighting
from matcher.store.photos import photo_path
from matcher.vocabulary import CandidateStatus, CaseStatus, Category, Sex
from matcher.wiring import make_engine

STEP = 10_000  # rows per INSERT
LANDMARKS = [[100.0, 120.0], [110.0, 120.0], [140.0, 120.0], [150.0, 120.0], [125.0, 150.0]]
FACE = {"box": [70.0, 70.0, 180.0, 180.0], "landmarks": LANDMARKS, "score": 0.95,
        "size_px": 110.0, "sharpness": 30.0, "unfit_reasons": [], "fit": True}
WHEN = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


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
        if engine.dialect.name == "postgresql":  # the ids given: the sequences go past them
            for table in ("cases", "case_photos", "faces"):
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                        f"(SELECT max(id) FROM {table}))"))
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


# --- the review queue's store (matcher.bench.queue) -----------------------------------------

PER_FACE = 5  # candidates per sighting face, of distinct cases
PER_CASE = 200  # candidates per case, on average
THRESHOLD = 0.6
OTHER = (CandidateStatus.CONFIRMED, CandidateStatus.REJECTED, CandidateStatus.NEEDS_INFO)


@contextmanager
def throwaway_store(database_url: str | None) -> Iterator[Engine]:
    """A migrated, empty store: SQLite in a temp dir, or a fresh database on the PostgreSQL
    server at `database_url` (a role allowed to CREATE DATABASE), dropped afterwards."""
    with ExitStack() as cleanup:  # unwinds in reverse: the engine goes before its database
        if database_url is None:
            work = Path(tempfile.mkdtemp(prefix="bench-queue-"))
            cleanup.callback(shutil.rmtree, work, ignore_errors=True)
            settings = Settings(data_dir=work)
        else:
            url = cleanup.enter_context(fresh_database(database_url, "bench_queue"))
            settings = Settings(database_url=url)
        engine = make_engine(settings)
        cleanup.callback(engine.dispose)
        migrate(engine)
        yield engine


def fill_queue(engine: Engine, n_candidates: int, pending: float, seed: int) -> int:
    """n_candidates / PER_CASE cases (one photo with one face each), n_candidates / PER_FACE
    sightings of one face each, and PER_FACE candidates of distinct cases per sighting face; a
    `pending` share pending, the rest confirmed, rejected or needs_info. Returns the number of
    cases. PostgreSQL is ANALYZEd then (as autovacuum would); SQLite is not (the service never
    runs ANALYZE)."""
    n_faces = -(-n_candidates // PER_FACE)  # sighting faces
    n_cases = max(PER_FACE, n_candidates // PER_CASE)
    with engine.begin() as connection:
        _fill_cases(connection, n_cases)
        _fill_sightings(connection, n_faces, first_face=n_cases + 1)
        _fill_candidates(connection, n_candidates, n_cases, pending,
                         np.random.default_rng(seed))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
    return n_cases


def _fill_cases(connection: Connection, n_cases: int) -> None:
    """Case i has photo i with face i."""
    for start, stop in _chunks(n_cases):
        ids = range(start + 1, stop + 1)
        connection.execute(insert(Case), [
            {"id": i, "category": Category.CHILD, "name": f"case {i}", "sex": Sex.UNKNOWN,
             "age_when_missing": 8.0, "missing_since": dt.date(2020, 1, 1),
             "status": CaseStatus.ACTIVE, "public_fields": [], "created_at": WHEN,
             "updated_at": WHEN} for i in ids])
        connection.execute(insert(CasePhoto), [
            {"id": i, "case_id": i, "sha256": f"{i:064x}", "path": f"cases/{i}.jpg",
             "width": 250, "height": 250, "created_at": WHEN} for i in ids])
        connection.execute(insert(Face), [{"id": i, "case_photo_id": i, **FACE} for i in ids])


def _fill_sightings(connection: Connection, n_faces: int, first_face: int) -> None:
    """Sighting i (from 1) has face first_face + i - 1."""
    for start, stop in _chunks(n_faces):
        ids = range(start + 1, stop + 1)
        connection.execute(insert(Sighting), [
            {"id": i, "uploaded_at": WHEN + dt.timedelta(seconds=i), "app": "tips",
             "sha256": f"{i:064x}", "path": f"sightings/{i}.jpg", "width": 640,
             "height": 480} for i in ids])
        connection.execute(insert(Face), [
            {"id": first_face + i - 1, "sighting_id": i, **FACE} for i in ids])


def false_match_rate(distance: float) -> float:
    """A calibration's answer for a distance, made up: rising tenfold every 0.1, from 1e-6 at
    0.2 to 1e-2 at the threshold 0.6. The queue orders by it (revision 0008), so only its
    order matters here."""
    return float(10.0 ** (-6.0 + 10.0 * (distance - 0.2)))


def _fill_candidates(connection: Connection, n_candidates: int, n_cases: int, pending: float,
                     rng: np.random.Generator) -> None:
    """Candidate k is rank k % PER_FACE of sighting face k // PER_FACE (0-based), whose
    PER_FACE cases are distinct (one stride apart), the faces' spread by a prime. Distances
    are uniform in [0.2, 0.8), each with its rate and distance / threshold."""
    stride = n_cases // PER_FACE
    statuses = (CandidateStatus.PENDING, *OTHER)
    for start, stop in _chunks(n_candidates):
        k = np.arange(start, stop)
        face, rank = k // PER_FACE, k % PER_FACE
        case = (face * 7919 + rank * stride) % n_cases + 1
        distance = rng.uniform(0.2, 0.8, len(k))
        status = np.where(rng.random(len(k)) < pending, 0, rng.integers(1, 4, len(k)))
        connection.execute(insert(Candidate), [
            {"id": int(k[j]) + 1, "sighting_face_id": n_cases + int(face[j]) + 1,
             "case_id": int(case[j]), "case_face_id": int(case[j]),
             "distance": float(distance[j]), "rank": int(rank[j]) + 1, "model_id": "m",
             "threshold": THRESHOLD, "false_match_rate": false_match_rate(distance[j]),
             "distance_ratio": float(distance[j]) / THRESHOLD,
             "status": statuses[int(status[j])], "created_at": WHEN}
            for j in range(len(k))])


def _chunks(n: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, STEP):
        yield start, min(start + STEP, n)
