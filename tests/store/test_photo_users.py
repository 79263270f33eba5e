"""A photo file is shared by every row with the same pixels: it is deleted only when no
committed row references it and no transaction in flight has stored or reused it.

The races are forced in one thread, in the order that lost a file before: one transaction is
left open (an ExitStack) while the other side deletes or sweeps.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from matcher.store import (
    NewSighting,
    StoredPhoto,
    add_case_photo,
    create_case,
    create_sighting,
    delete_case_photo,
    photo_transaction,
    remove_orphans,
    store_photo,
)
from matcher.store import orphans as orphan_store
from matcher.store import photos as photo_store
from matcher.store.photos import remove_if_unreferenced
from tests.store.builders import new_case, pixels


def _case_photo(session: Session, data_dir: Path, seed: int) -> tuple[int, int, StoredPhoto]:
    """A committed case photo: (case id, photo id, its file)."""
    case = create_case(session, new_case())
    photo = store_photo(data_dir, pixels(seed))
    row = add_case_photo(session, case.id, photo)
    session.commit()
    return case.id, row.id, photo


def _aged(path: Path, seconds: float = 7200) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


@pytest.mark.parametrize("outcome", ["commits", "fails"])
def test_a_file_reused_in_flight_outlives_the_deletion_of_its_other_row(
    factory: sessionmaker[Session], data_dir: Path, outcome: str
) -> None:
    with factory() as session:
        case_id, photo_id, photo = _case_photo(session, data_dir, 1)
    sighting = factory()
    with ExitStack() as flight:
        if outcome == "fails":
            flight.enter_context(pytest.raises(RuntimeError))
        photos = flight.enter_context(photo_transaction(sighting, data_dir))
        assert not photos.store(pixels(1)).created  # the case photo's file, reused

        with factory() as other:  # the case photo goes meanwhile (remove_photo, erase)
            delete_case_photo(other, case_id, photo_id)
            other.commit()
            assert not remove_if_unreferenced(other, data_dir, photo.sha256)
        assert (data_dir / photo.path).is_file()  # still in use: left to the transaction

        create_sighting(sighting, NewSighting(app="tips"), photo)
        if outcome == "fails":
            raise RuntimeError("the upload is refused after its file was stored")
    sighting.close()
    # Its last user checked again at the end: a committed row keeps the file, none deletes it.
    assert (data_dir / photo.path).is_file() is (outcome == "commits")


def test_a_refused_transaction_keeps_the_file_a_concurrent_one_reuses(
    factory: sessionmaker[Session], data_dir: Path
) -> None:
    refused, accepted = factory(), factory()
    with photo_transaction(accepted, data_dir) as kept:
        with pytest.raises(RuntimeError), photo_transaction(refused, data_dir) as dropped:
            created = dropped.store(pixels(2))
            reused = kept.store(pixels(2))  # the same pixels, sent again meanwhile
            assert created.created and not reused.created
            raise RuntimeError("latitude without longitude")
        assert (data_dir / reused.path).is_file()
        create_sighting(accepted, NewSighting(app="tips"), reused)
    refused.close()
    accepted.close()
    assert (data_dir / reused.path).is_file()


def test_the_sweep_spares_a_file_reused_after_it_listed_the_orphans(
    factory: sessionmaker[Session], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stray = store_photo(data_dir, pixels(3))  # left by a crash, an hour ago
    _aged(data_dir / stray.path)
    listing = orphan_store.orphan_files
    late = factory()
    flight = ExitStack()

    def listed_then_reused(session: Session, root: Path, min_age_s: float) -> list[Path]:
        found = listing(session, root, min_age_s)
        assert found == [data_dir / stray.path]
        # A sighting of the same pixels comes in now and stays in flight through the sweep.
        photos = flight.enter_context(photo_transaction(late, data_dir))
        assert not photos.store(pixels(3)).created
        create_sighting(late, NewSighting(app="tips"), stray)
        return found

    monkeypatch.setattr(orphan_store, "orphan_files", listed_then_reused)
    with factory() as session:
        assert remove_orphans(session, data_dir) == []
    flight.close()  # commits
    late.close()
    assert (data_dir / stray.path).is_file()


def test_the_sweep_spares_a_file_reused_and_committed_after_it_listed_the_orphans(
    factory: sessionmaker[Session], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stray = store_photo(data_dir, pixels(4))
    _aged(data_dir / stray.path)
    listing = orphan_store.orphan_files

    def listed_then_committed(session: Session, root: Path, min_age_s: float) -> list[Path]:
        found = listing(session, root, min_age_s)
        with factory() as late, photo_transaction(late, data_dir) as photos:
            create_sighting(late, NewSighting(app="tips"), photos.store(pixels(4)))
        _aged(data_dir / stray.path)  # even were the file old, the row now keeps it
        return found

    monkeypatch.setattr(orphan_store, "orphan_files", listed_then_committed)
    with factory() as session:
        assert remove_orphans(session, data_dir) == []
    assert (data_dir / stray.path).is_file()


def test_a_file_another_process_deleted_before_our_commit_is_written_again(
    factory: sessionmaker[Session], data_dir: Path
) -> None:
    """Another process's deletion is not in this process's count of users: it read no row
    using the file (ours had not committed) and deleted it. Our commit writes it again."""
    with factory() as session, photo_transaction(session, data_dir) as photos:
        photo = photos.store(pixels(7))
        create_sighting(session, NewSighting(app="tips"), photo)
        (data_dir / photo.path).unlink()  # what that process did, between our store and commit
    assert (data_dir / photo.path).is_file()
    assert photo_store.clean_jpeg(pixels(7)).data == (data_dir / photo.path).read_bytes()


def test_a_deletion_keeps_a_file_whose_row_another_process_commits_meanwhile(
    factory: sessionmaker[Session], data_dir: Path
) -> None:
    """The deletion read no reference; another process commits a row using the file before
    the deletion reads again (with the file set aside): the file is put back."""
    photo = store_photo(data_dir, pixels(8))
    deleting = factory()
    statements = 0

    def commit_elsewhere(*_: object) -> None:
        nonlocal statements
        statements += 1
        if statements == 3:  # the first check's two reads are done: the file is aside now
            assert not (data_dir / photo.path).exists()
            with factory() as other:
                create_sighting(other, NewSighting(app="tips"), photo)
                other.commit()

    engine = deleting.get_bind()
    event.listen(engine, "before_cursor_execute", commit_elsewhere)
    try:
        assert not remove_if_unreferenced(deleting, data_dir, photo.sha256)
    finally:
        event.remove(engine, "before_cursor_execute", commit_elsewhere)
        deleting.close()
    assert statements >= 3 and (data_dir / photo.path).is_file()
    assert not list((data_dir / photo.path).parent.glob("*.deleting"))
