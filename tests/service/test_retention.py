"""Retention: unmatched old sightings go with every trace; an erased case cannot come back."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from matcher.config import Settings
from matcher.embed import FacePipeline
from matcher.service import (
    CasePhotoUpload,
    Runtime,
    erase,
    ingest_sighting,
    open_runtime,
    purge_sightings,
    register_case,
    sighting_candidates,
)
from matcher.service.reindex import ReindexJob
from matcher.store import (
    AuditEvent,
    Candidate,
    CandidateStatus,
    CasePhoto,
    Decision,
    Face,
    FaceVector,
    NewCase,
    NewSighting,
    Sighting,
    Verdict,
    list_events,
)
from tests.data import REPO_ROOT, fgnet_photo, require_test_data

OLD = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)


def _count(matcher, model, *where) -> int:  # type: ignore[no-untyped-def]
    with matcher.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_purge_takes_old_unmatched_sightings_with_every_trace(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    require_test_data()
    matcher = open_runtime(settings.model_copy(update={"data_dir": tmp_path}), pipeline)
    try:
        register_case(matcher, NewCase(category="child", name="A", age_when_missing=8,
                                       missing_since=dt.date(2019, 1, 1)),
                      [CasePhotoUpload(fgnet_photo("001A08.JPG"))])
        old = NewSighting(app="tips", uploaded_at=OLD)
        pending = ingest_sighting(matcher, fgnet_photo("001A10.JPG"), old).sighting_id
        rejected = ingest_sighting(matcher, fgnet_photo("001A14.JPG"), old).sighting_id
        confirmed = ingest_sighting(matcher, fgnet_photo("001A16.JPG"), old).sighting_id
        nothing = ingest_sighting(matcher, fgnet_photo("009A09.JPG"), old)  # near misses only
        recent = ingest_sighting(matcher, fgnet_photo("009A11.JPG"), NewSighting(app="tips"))
        judged = {sighting_id: sighting_candidates(matcher, sighting_id)[0]
                  for sighting_id in (rejected, confirmed)}
        with matcher.sessions() as session, session.begin():
            for sighting_id, status in ((rejected, CandidateStatus.REJECTED),
                                        (confirmed, CandidateStatus.CONFIRMED)):
                session.get(Candidate, judged[sighting_id].id).status = status  # type: ignore[union-attr]
            session.add(Decision(sighting_face_id=judged[rejected].sighting_face_id,
                                 case_id=judged[rejected].case_id, verdict=Verdict.NOT_MATCH,
                                 reviewer="inv"))
        for sighting_id in (pending, rejected, confirmed):
            assert sighting_candidates(matcher, sighting_id)[0].distance < 0.6
        assert sighting_candidates(matcher, nothing.sighting_id)[0].distance > 0.6
        files_before = sorted((tmp_path / "photos").rglob("*.jpg"))
        with matcher.sessions() as session:
            purged_faces = list(session.scalars(select(Face.id).where(
                Face.sighting_id.in_([rejected, nothing.sighting_id]))))
        in_index = len(matcher.sighting_index)

        dry = purge_sightings(matcher, 365, dry_run=True)
        assert dry.sightings == 2 and _count(matcher, Sighting) == 5
        report = purge_sightings(matcher, 365)
        assert (report.sightings, report.files) == (2, 2)
        kept = set(matcher.sessions().scalars(select(Sighting.id)))
        assert kept == {pending, confirmed, recent.sighting_id}
        assert nothing.sighting_id not in kept and rejected not in kept
        assert _count(matcher, Face, Face.id.in_(purged_faces)) == 0
        assert _count(matcher, FaceVector, FaceVector.face_id.in_(purged_faces)) == 0
        assert _count(matcher, Decision) == 0  # it was about a purged face
        assert len(sorted((tmp_path / "photos").rglob("*.jpg"))) == len(files_before) - 2
        assert len(matcher.sighting_index) == in_index - len(purged_faces)
        with matcher.sessions() as session:
            assert [e.action for e in list_events(session, object_type="sightings")] == ["purge"]
    finally:
        matcher.close()


def test_an_erased_case_leaves_nothing_a_reindex_could_bring_back(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    require_test_data()
    store = settings.model_copy(update={"data_dir": tmp_path})
    matcher = open_runtime(store, pipeline)
    try:
        erased, _ = register_case(matcher, NewCase(category="child", name="A", age_when_missing=8,
                                                   missing_since=dt.date(2019, 1, 1)),
                                  [CasePhotoUpload(fgnet_photo("001A08.JPG")),
                                   CasePhotoUpload(fgnet_photo("001A10.JPG"))])
        other, _ = register_case(matcher, NewCase(category="child", name="B", age_when_missing=9,
                                                  missing_since=dt.date(2019, 1, 1)),
                                 [CasePhotoUpload(fgnet_photo("009A09.JPG"))])
        ingest_sighting(matcher, fgnet_photo("001A14.JPG"), NewSighting(app="tips"))
        assert _count(matcher, Candidate, Candidate.case_id == erased.id) == 1
        erase(matcher, erased.id)
        assert matcher.index.faces_of(erased.id).size == 0 and matcher.index.owner_count == 1
        for model, where in ((CasePhoto, CasePhoto.case_id == erased.id),
                             (Candidate, Candidate.case_id == erased.id)):
            assert _count(matcher, model, where) == 0
        assert _count(matcher, Face, Face.case_photo_id.is_not(None)) == 1  # B's face only
        assert len(list((tmp_path / "photos").rglob("*.jpg"))) == 2  # B's photo, the sighting
        report = ReindexJob(matcher, store.model_copy(update={"embed_flip": True})).run()
        assert report.swapped and matcher.index.owner_count == 1
        assert matcher.index.faces_of(erased.id).size == 0
        assert _count(matcher, AuditEvent, AuditEvent.action == "erase") == 1
    finally:
        matcher.close()


def test_the_purge_command_counts_without_deleting(tmp_path: Path) -> None:
    env = {**os.environ, "MATCHER_DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "matcher", "purge", "--dry-run"],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("would purge 0 sightings uploaded before ")


def test_the_purge_command_takes_zero_days_as_every_unmatched_sighting(
    settings: Settings, pipeline: FacePipeline, tmp_path: Path
) -> None:
    """0 is a retention period (everything that matched nobody, however recent); it was
    refused as "no retention period" (issue 19, defect 15)."""
    require_test_data()
    matcher = open_runtime(settings.model_copy(update={"data_dir": tmp_path}), pipeline)
    try:
        ingest_sighting(matcher, fgnet_photo("001A10.JPG"), NewSighting(app="tips"))
    finally:
        matcher.close()
    env = {**os.environ, "MATCHER_DATA_DIR": str(tmp_path), "MATCHER_THREADS": "1"}

    def purge(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "matcher", "purge", *args], cwd=REPO_ROOT,
                              env=env, capture_output=True, text=True, timeout=300,
                              check=False)

    for days in ("-1", "nan"):
        refused = purge("--older-than-days", days)
        assert refused.returncode == 2 and "0 or more" in refused.stderr, refused.stderr
    done = purge("--older-than-days", "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("purged 1 sightings uploaded before ")
    matcher = open_runtime(settings.model_copy(update={"data_dir": tmp_path}), pipeline)
    try:
        assert _count(matcher, Sighting) == 0
    finally:
        matcher.close()


def test_sightings_purged_by_another_process_do_not_fail_later_case_photos(
    matcher: Runtime, pipeline: FacePipeline
) -> None:
    """`matcher purge` run beside the server: the server's sighting index still holds the
    purged faces. A case photo near one of them failed after its commit (a candidate for a
    face the store no longer has), and so did every retry."""
    require_test_data()
    purged = ingest_sighting(matcher, fgnet_photo("001A10.JPG"),
                             NewSighting(app="tips", uploaded_at=OLD)).sighting_id
    kept = ingest_sighting(matcher, fgnet_photo("001A14.JPG"), NewSighting(app="tips"))
    other_process = open_runtime(matcher.settings, pipeline)
    try:
        assert purge_sightings(other_process, 365).sightings == 1
    finally:
        other_process.close()
    assert matcher.sighting_index.faces_of(purged).size == 1  # this process never heard

    register_case(matcher, NewCase(category="child", name="A", age_when_missing=8,
                                   missing_since=dt.date(2019, 1, 1)),
                  [CasePhotoUpload(fgnet_photo("001A08.JPG"))])
    assert matcher.sighting_index.faces_of(purged).size == 0
    assert [c.rank for c in sighting_candidates(matcher, kept.sighting_id)] == [1]
