from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from matcher.store import (
    NewSighting,
    UnsupportedPhoto,
    add_case_photo,
    create_case,
    create_sighting,
    orphan_files,
    photo_transaction,
    read_photo,
    remove_orphans,
    store_photo,
)
from matcher.store.models import CasePhoto
from matcher.store.photos import clean_jpeg
from tests.store.builders import jpeg_with_gps, new_case, new_face, pixels


def test_the_builder_really_carries_gps() -> None:
    with Image.open(io.BytesIO(jpeg_with_gps())) as image:
        exif = image.getexif()
        assert exif.get_ifd(0x8825)[2] == (52.0, 31.0, 12.0)
        assert exif[0x0110] == "Phone X"


def test_stored_photos_carry_no_metadata(tmp_path: Path) -> None:
    photo = store_photo(tmp_path, jpeg_with_gps())
    data = read_photo(tmp_path, photo.path)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.mode == "RGB"
        assert len(image.getexif()) == 0
        assert image.getexif().get_ifd(0x8825) == {}
        assert not {"exif", "icc_profile", "xmp", "comment", "photoshop"} & set(image.info)
    assert b"Exif" not in data and b"Phone X" not in data and b"secret note" not in data
    assert b"http://ns.adobe.com/xap" not in data


def test_orientation_is_baked_in_before_exif_goes(tmp_path: Path) -> None:
    image = Image.fromarray(pixels(3, height=20, width=40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    photo = store_photo(tmp_path, out.getvalue())
    assert (photo.width, photo.height) == (20, 40)


def test_photos_are_stored_by_content(tmp_path: Path) -> None:
    first = store_photo(tmp_path, pixels(1))
    again = store_photo(tmp_path, pixels(1))
    other = store_photo(tmp_path, pixels(2))
    assert first.created and not again.created and other.created
    assert first.sha256 == again.sha256 != other.sha256
    assert first.path == f"photos/{first.sha256[:2]}/{first.sha256[2:4]}/{first.sha256}.jpg"
    assert hashlib.sha256(read_photo(tmp_path, first.path)).hexdigest() == first.sha256
    decoded = np.asarray(Image.open(tmp_path / first.path))
    assert decoded.shape == (48, 64, 3)
    assert list(tmp_path.rglob("*.tmp")) == []


def test_a_photo_encoded_ahead_is_stored_as_the_store_would_encode_it(tmp_path: Path) -> None:
    ahead = clean_jpeg(jpeg_with_gps())  # e.g. encoded while the faces are being detected
    assert b"Exif" not in ahead.data and b"Phone X" not in ahead.data
    stored = store_photo(tmp_path, ahead)
    assert stored.sha256 == ahead.sha256 == hashlib.sha256(ahead.data).hexdigest()
    assert read_photo(tmp_path, stored.path) == ahead.data
    assert (stored.width, stored.height) == (ahead.width, ahead.height) == (64, 48)
    assert not store_photo(tmp_path, jpeg_with_gps()).created  # the same file, by content


def test_what_is_not_a_photo_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedPhoto):
        store_photo(tmp_path, b"not an image")
    with pytest.raises(UnsupportedPhoto):
        store_photo(tmp_path, np.zeros((4, 4), np.uint8))
    with pytest.raises(UnsupportedPhoto):
        store_photo(tmp_path, pixels(1), max_pixels=100)
    with pytest.raises(UnsupportedPhoto):
        store_photo(tmp_path, jpeg_with_gps(), max_pixels=100)
    assert not (tmp_path / "photos").exists()


def test_a_failed_commit_leaves_no_new_file(session: Session, data_dir: Path) -> None:
    case = create_case(session, new_case())
    kept = store_photo(data_dir, pixels(1))
    add_case_photo(session, case.id, kept)
    session.commit()
    with pytest.raises(IntegrityError), photo_transaction(session, data_dir) as photos:
        new = photos.store(pixels(2))
        same = photos.store(pixels(1))  # already there and referenced: must survive
        assert new.created and not same.created
        assert (data_dir / new.path).is_file()
        # An unknown case: the foreign key fails when the commit flushes.
        session.add(CasePhoto(case_id=case.id + 1000, sha256=new.sha256, path=new.path,
                              width=new.width, height=new.height))
    assert not (data_dir / new.path).exists()
    assert (data_dir / kept.path).is_file()


def test_a_failing_block_removes_its_files_too(session: Session, data_dir: Path) -> None:
    with pytest.raises(RuntimeError), photo_transaction(session, data_dir) as photos:
        photo = photos.store(jpeg_with_gps())
        create_sighting(session, NewSighting(app="tips"), photo, [new_face(1)])
        raise RuntimeError("embedding failed")
    assert list((data_dir / "photos").rglob("*.jpg")) == []


def test_a_successful_transaction_keeps_row_and_file(session: Session, data_dir: Path) -> None:
    with photo_transaction(session, data_dir) as photos:
        photo = photos.store(jpeg_with_gps())
        sighting = create_sighting(session, NewSighting(app="tips"), photo, [new_face(1)])
    session.expire_all()
    assert session.get(type(sighting), sighting.id) is not None
    assert (data_dir / photo.path).is_file()
    assert orphan_files(session, data_dir, min_age_s=0) == []


def test_the_sweep_finds_files_no_row_references(session: Session, data_dir: Path) -> None:
    case = create_case(session, new_case())
    referenced = store_photo(data_dir, pixels(1))
    add_case_photo(session, case.id, referenced)
    sighted = store_photo(data_dir, pixels(2))
    create_sighting(session, NewSighting(app="tips"), sighted)
    session.commit()
    stray = store_photo(data_dir, pixels(3))  # a crash between file and commit
    leftover = data_dir / "photos" / "ab" / "cd" / ".x.jpg.123.tmp"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half")

    assert orphan_files(session, data_dir) == []  # too young: may be in flight
    found = orphan_files(session, data_dir, min_age_s=0)
    assert found == sorted([data_dir / stray.path, leftover])
    old = time.time() - 7200
    os.utime(data_dir / stray.path, (old, old))
    assert orphan_files(session, data_dir) == [data_dir / stray.path]
    # A transaction that stores the same pixels again makes the file young: kept by the sweep.
    assert not store_photo(data_dir, pixels(3)).created
    assert orphan_files(session, data_dir) == []
    assert remove_orphans(session, data_dir, min_age_s=0) == found
    assert not (data_dir / stray.path).exists() and not leftover.exists()
    assert (data_dir / referenced.path).is_file() and (data_dir / sighted.path).is_file()
