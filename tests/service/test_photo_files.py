"""Photo files against the deletions that share them: a committed row's file is never gone,
and files no row references are swept by the housekeeping round and by `matcher purge`.

A file is shared by every row with the same pixels. The races are forced by pausing a real
upload right after it stored its file (threading.Event), on both databases.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from matcher.service import (
    CasePhotoUpload,
    Runtime,
    SightingResult,
    erase,
    ingest_sighting,
    read_sighting,
    register_case,
)
from matcher.service.maintenance import maintain
from matcher.service.media import face_crop, sighting_photo
from matcher.store import (
    CasePhoto,
    InvalidRecord,
    NewCase,
    NewSighting,
    PhotoWriter,
    Sighting,
    orphan_files,
    store_photo,
)
from tests.data import REPO_ROOT, fgnet_photo, require_test_data
from tests.store.builders import pixels


def _case_with_photo(matcher: Runtime, photo: bytes) -> tuple[int, Path]:
    """(case id, its photo file)."""
    case, [added] = register_case(
        matcher, NewCase(category="child", name="A", age_when_missing=8,
                         missing_since=dt.date(2019, 1, 1)), [CasePhotoUpload(photo)])
    return case.id, _file(matcher, CasePhoto, added.photo_id)


def _file(matcher: Runtime, kind: type[CasePhoto] | type[Sighting], row_id: int) -> Path:
    """The stored file of a case photo or a sighting (the service hands out no file path)."""
    with matcher.sessions() as session:
        path = session.scalar(select(kind.path).where(kind.id == row_id))
    assert path is not None
    return matcher.settings.data_dir / path


class PausedUpload:
    """A real upload in its own thread, paused right after its transaction stored its photo
    file (made by the `paused` fixture) until `finish`."""

    def __init__(self, work: Callable[[], SightingResult]) -> None:
        self.thread = threading.Thread(target=self._run)
        self.result: SightingResult | None = None
        self.error: Exception | None = None
        self._work = work
        self._stored, self._resume = threading.Event(), threading.Event()

    def _run(self) -> None:
        try:
            self.result = self._work()
        except Exception as error:  # the test reads it
            self.error = error

    def start(self) -> PausedUpload:
        self.thread.start()
        assert self._stored.wait(60)
        return self

    def pause_here(self) -> None:
        self._stored.set()
        assert self._resume.wait(60)

    def finish(self) -> PausedUpload:
        self._resume.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        return self


@pytest.fixture
def paused(monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[Callable[[Callable[[], SightingResult]], PausedUpload]]:
    """Starts uploads that pause once their file is stored (the real `PhotoWriter.store`)."""
    uploads: dict[threading.Thread, PausedUpload] = {}
    store = PhotoWriter.store

    def stored_then_paused(writer, image):  # type: ignore[no-untyped-def]
        photo = store(writer, image)
        upload = uploads.get(threading.current_thread())
        if upload is not None:
            upload.pause_here()
        return photo

    def start(work: Callable[[], SightingResult]) -> PausedUpload:
        upload = PausedUpload(work)
        uploads[upload.thread] = upload
        return upload.start()

    monkeypatch.setattr(PhotoWriter, "store", stored_then_paused)
    yield start
    for upload in uploads.values():  # never leave a thread waiting
        upload.finish()


Paused = Callable[[Callable[[], SightingResult]], PausedUpload]


def test_a_case_erased_while_its_photo_comes_in_as_a_sighting_leaves_the_sighting_its_file(
    matcher: Runtime, paused: Paused
) -> None:
    require_test_data()
    poster = fgnet_photo("001A08.JPG")  # the missing child's poster, photographed and sent in
    case_id, file = _case_with_photo(matcher, poster)
    upload = paused(lambda: ingest_sighting(matcher, poster, NewSighting(app="tips")))
    erase(matcher, case_id)
    assert file.is_file()  # the upload in flight uses it
    result = upload.finish().result
    assert result is not None

    sighting = read_sighting(matcher, result.sighting_id)
    assert sighting_photo(matcher, sighting.id) == file.read_bytes()
    assert face_crop(matcher, sighting.faces[0].id)


def test_a_case_erased_while_a_refused_upload_holds_its_file_loses_the_file_at_the_end(
    matcher: Runtime, paused: Paused
) -> None:
    require_test_data()
    poster = fgnet_photo("001A08.JPG")
    case_id, file = _case_with_photo(matcher, poster)
    refused = NewSighting(app="tips", lat=51.5)  # a latitude without a longitude
    upload = paused(lambda: ingest_sighting(matcher, poster, refused))
    erase(matcher, case_id)
    assert file.is_file()  # in use until the upload is over
    assert isinstance(upload.finish().error, InvalidRecord)

    assert not file.exists()  # the upload was its last user: no row, no file
    with matcher.sessions() as session:
        assert orphan_files(session, matcher.settings.data_dir, min_age_s=0) == []


def test_an_upload_refused_after_storing_keeps_the_file_a_concurrent_one_reuses(
    matcher: Runtime, paused: Paused
) -> None:
    require_test_data()
    photo = fgnet_photo("001A10.JPG")
    refused = paused(lambda: ingest_sighting(matcher, photo, NewSighting(app="1", lat=51.5)))
    accepted = paused(lambda: ingest_sighting(matcher, photo, NewSighting(app="2")))
    assert isinstance(refused.finish().error, InvalidRecord)  # it wrote the file, the other
    result = accepted.finish().result  # reused it and commits now
    assert result is not None

    sighting = read_sighting(matcher, result.sighting_id)
    file = _file(matcher, Sighting, sighting.id)
    assert sighting_photo(matcher, sighting.id) == file.read_bytes()


def _aged(path: Path, seconds: float = 7200) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_the_housekeeping_round_sweeps_old_files_no_row_references(matcher: Runtime) -> None:
    require_test_data()
    _, kept = _case_with_photo(matcher, fgnet_photo("001A08.JPG"))
    data_dir = matcher.settings.data_dir
    stray = data_dir / store_photo(data_dir, pixels(1)).path  # a crash between file and commit
    young = data_dir / store_photo(data_dir, pixels(2)).path  # may be in flight
    _aged(stray)
    _aged(kept)

    maintain(matcher)

    assert not stray.exists()
    assert young.is_file() and kept.is_file()


def test_the_purge_command_sweeps_old_files_no_row_references(tmp_path: Path) -> None:
    stray = tmp_path / store_photo(tmp_path, pixels(1)).path
    _aged(stray)
    env = {**os.environ, "MATCHER_DATA_DIR": str(tmp_path)}

    def purge(*flags: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "matcher", "purge", "--older-than-days", "365", *flags],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "would remove 1 orphan photo files" in purge("--dry-run")
    assert stray.is_file()
    assert "removed 1 orphan photo files" in purge()
    assert not stray.exists()
