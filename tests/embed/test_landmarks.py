"""The numpy ERT landmark predictor against dlib's own shape_predictor, on real photos.

dlib (dlib-bin) is the oracle: same model file, same boxes, and the landmarks must be identical
(dlib returns integer points, so "close" would hide a real difference).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dlib
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image as PILImage

from matcher.config import Settings
from matcher.embed.dlib_format import DlibReader
from matcher.embed.errors import ModelFileError
from matcher.embed.landmarks import (
    SHAPE_CONVERTER_VERSION,
    ShapePredictor,
    parse_shape_predictor,
)
from matcher.embed.weights import DLIB_MMOD, DLIB_SHAPE5
from tests.data import Photo, fgnet_photos, lfw_photos, sample

Box = tuple[int, int, int, int]


@pytest.fixture(scope="module")
def predictor(settings: Settings) -> ShapePredictor:
    return ShapePredictor.load(settings.cache_dir)


@pytest.fixture(scope="module")
def oracle() -> dlib.shape_predictor:
    return dlib.shape_predictor(str(DLIB_SHAPE5.path()))


@pytest.fixture(scope="module")
def hog() -> dlib.fhog_object_detector:
    return dlib.get_frontal_face_detector()


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return DLIB_SHAPE5.path().read_bytes()


def _rgb(photo: Photo) -> NDArray[np.uint8]:
    with PILImage.open(photo.path) as image:
        return np.asarray(image.convert("RGB"))


def _dlib_points(
    oracle: dlib.shape_predictor, image: NDArray[np.uint8], boxes: list[Box]
) -> NDArray[np.float32]:
    shapes = [oracle(image, dlib.rectangle(*box)) for box in boxes]
    points = [[(part.x, part.y) for part in shape.parts()] for shape in shapes]
    return np.asarray(points, dtype=np.float32).reshape(len(boxes), 5, 2)


def _variants(box: Box) -> list[Box]:
    """The detector's box plus shifted, enlarged, shrunk and stretched ones, so the
    predictor runs on many different rects (and on faces it is poorly centred on)."""
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    return [
        box,
        (left + w // 7, top - h // 9, right + w // 7, bottom - h // 9),
        (left - w // 5, top - h // 5, right + w // 5, bottom + h // 5),
        (left + w // 8, top + w // 8, right - h // 10, bottom - h // 10),
        (left - w // 6, top, right + w // 6, bottom + 3),
    ]


def _compare_on_photos(
    photos: list[Photo],
    predictor: ShapePredictor,
    oracle: dlib.shape_predictor,
    hog: dlib.fhog_object_detector,
    upsample: int,
) -> tuple[int, int, list[str]]:
    """(faces found, boxes compared, descriptions of mismatches)."""
    faces = compared = 0
    mismatches: list[str] = []
    for photo in photos:
        image = _rgb(photo)
        found = [(r.left(), r.top(), r.right(), r.bottom()) for r in hog(image, upsample)]
        faces += len(found)
        boxes = [variant for box in found for variant in _variants(box)]
        if not boxes:
            continue
        ours = predictor.predict(image, np.asarray(boxes))
        theirs = _dlib_points(oracle, image, boxes)
        compared += len(boxes)
        for box, mine, ref in zip(boxes, ours, theirs, strict=True):
            if not np.array_equal(mine, ref):
                mismatches.append(f"{photo.path.name} {box}: {mine.tolist()} != {ref.tolist()}")
    return faces, compared, mismatches


@pytest.mark.parametrize(
    "label, photos, count, min_faces",
    [("LFW", lfw_photos, 150, 140), ("FG-NET", fgnet_photos, 100, 70)],
)
def test_landmarks_equal_dlib(
    predictor: ShapePredictor,
    oracle: dlib.shape_predictor,
    hog: dlib.fhog_object_detector,
    label: str,
    photos: Callable[[], tuple[Photo, ...]],
    count: int,
    min_faces: int,
) -> None:
    chosen = sample(photos(), count, seed=1 if label == "LFW" else 2)
    faces, compared, mismatches = _compare_on_photos(chosen, predictor, oracle, hog, upsample=0)
    print(f"{label}: {compared} boxes on {faces} faces, {len(mismatches)} differ from dlib")
    assert faces >= min_faces, f"HOG found only {faces} faces in {count} {label} photos"
    assert not mismatches, f"{len(mismatches)} of {compared} boxes differ:\n" + "\n".join(
        mismatches[:10]
    )


def test_grey_image_equals_its_rgb_copy_and_dlib(
    predictor: ShapePredictor, oracle: dlib.shape_predictor, hog: dlib.fhog_object_detector
) -> None:
    """A 2-D grey array takes dlib's grey path; our RGB copy of it must give the same points."""
    checked = 0
    for photo in sample(fgnet_photos(), 12, seed=3):
        with PILImage.open(photo.path) as image:
            grey = np.asarray(image.convert("L"))
        boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in hog(grey, 0)]
        if not boxes:
            continue
        rgb = np.repeat(grey[..., None], 3, axis=2)
        theirs = _dlib_points(oracle, grey, boxes)
        np.testing.assert_array_equal(predictor.predict(grey, np.asarray(boxes)), theirs)
        np.testing.assert_array_equal(predictor.predict(rgb, np.asarray(boxes)), theirs)
        checked += len(boxes)
    assert checked >= 5


def test_boxes_partly_outside_the_image_equal_dlib(
    predictor: ShapePredictor, oracle: dlib.shape_predictor, hog: dlib.fhog_object_detector
) -> None:
    """Feature pixels that fall outside the image read as 0 in dlib; so must ours."""
    compared = 0
    for photo in sample(lfw_photos(), 10, seed=4):
        image = _rgb(photo)
        height, width = image.shape[:2]
        for r in hog(image, 0):
            left, top, right, bottom = r.left(), r.top(), r.right(), r.bottom()
            w, h = right - left, bottom - top
            boxes = [
                (-w // 2, top, w // 2, bottom),  # across the left edge
                (left, -h // 2, right, h // 2),  # across the top edge
                (width - w // 2, top, width + w // 2, bottom),  # across the right edge
                (left, height - h // 3, right, height + 2 * h // 3),  # across the bottom
                (-w, -h, width + w, height + h),  # bigger than the image
                (width + 5, height + 5, width + 5 + w, height + 5 + h),  # wholly outside
            ]
            np.testing.assert_array_equal(
                predictor.predict(image, np.asarray(boxes)), _dlib_points(oracle, image, boxes)
            )
            compared += len(boxes)
    assert compared >= 30


def test_float_boxes_and_empty_input(predictor: ShapePredictor) -> None:
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    assert predictor.predict(image, np.zeros((0, 4), dtype=np.int64)).shape == (0, 5, 2)
    as_int = predictor.predict(image, np.array([[10, 12, 50, 55]]))
    as_float = predictor.predict(image, np.array([[10.2, 11.6, 49.5, 55.4]]))
    np.testing.assert_array_equal(as_int, as_float)
    with pytest.raises(ValueError):
        predictor.predict(image, np.array([10, 12, 50, 55]))
    with pytest.raises(ValueError):
        predictor.predict(image.astype(np.float32), np.array([[10, 12, 50, 55]]))


def test_parsed_arrays_match_a_sequential_read(model_bytes: bytes) -> None:
    """The vectorised decoder against DlibReader's field-by-field read of the file's head."""
    arrays = parse_shape_predictor(model_bytes)
    assert arrays["initial_shape"].shape == (5, 2)
    assert arrays["split_idx1"].shape == (15, 500, 15)
    assert arrays["leaves"].shape == (15, 500, 16, 10)
    assert arrays["anchor_idx"].shape == (15, 800)
    assert arrays["deltas"].shape == (15, 800, 2)

    reader = DlibReader(model_bytes)
    assert reader.int() == 1
    np.testing.assert_array_equal(arrays["initial_shape"].ravel(), reader.float_matrix().ravel())
    assert (reader.int(), reader.int(), reader.int()) == (15, 500, 15)  # cascades, trees, splits
    for split in range(15):
        assert arrays["split_idx1"][0, 0, split] == reader.int()
        assert arrays["split_idx2"][0, 0, split] == reader.int()
        assert arrays["split_thresh"][0, 0, split] == np.float32(reader.float())
    assert reader.int() == 16
    for leaf in range(16):
        np.testing.assert_array_equal(arrays["leaves"][0, 0, leaf], reader.float_matrix().ravel())


@pytest.mark.parametrize("keep", [0, 1, 40, 4_000_000, -1])
def test_truncated_file_raises(model_bytes: bytes, keep: int) -> None:
    with pytest.raises(ModelFileError):
        parse_shape_predictor(model_bytes[:keep])


def test_other_model_file_raises() -> None:
    with pytest.raises(ModelFileError):
        parse_shape_predictor(DLIB_MMOD.path().read_bytes())


def test_second_load_reads_the_cache(tmp_path: Path) -> None:
    first = ShapePredictor.load(tmp_path)
    [cached] = tmp_path.glob(f"*-{SHAPE_CONVERTER_VERSION}.npz")
    # Mark the cached copy; only a load that really reads the cache can see the mark.
    with np.load(cached) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["initial_shape"] = arrays["initial_shape"] + np.float32(0.5)
    with cached.open("wb") as handle:
        np.savez(handle, **arrays)
    second = ShapePredictor.load(tmp_path)
    np.testing.assert_array_equal(second.initial_shape, first.initial_shape + np.float32(0.5))
    np.testing.assert_array_equal(second.leaves, first.leaves)
