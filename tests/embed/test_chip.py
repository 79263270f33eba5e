"""Face chips from matcher.embed.chip against dlib's own get_face_chip, on real photos.

dlib (dlib-bin) is the oracle: HOG boxes, dlib's 5-point landmarks, then dlib.get_face_chip /
get_face_chips versus our chip_details + extract_chips on the same landmarks. Some FG-NET
photos are upscaled 4x so that faces are far larger than the 150 px chip and dlib's
pyramid_down<2> pre-pyramid (the part that is easy to get subtly wrong) is exercised.
"""

from __future__ import annotations

import dlib
import numpy as np
import pytest

from matcher.embed.chip import ChipDetails, chip_details, extract_chips, pyramid_down_2
from matcher.embed.weights import DLIB_SHAPE5
from tests.data import fgnet_photos, lfw_photos, sample
from tests.embed.dlib_reference import DlibFace, dlib_faces

LFW_COUNT, FGNET_COUNT, UPSCALED_COUNT, UPSCALE = 120, 60, 20, 4


@pytest.fixture(scope="module")
def faces() -> list[DlibFace]:
    found = dlib_faces(sample(lfw_photos(), LFW_COUNT)) + dlib_faces(
        sample(fgnet_photos(), FGNET_COUNT)
    )
    upscaled = dlib_faces(sample(fgnet_photos(), UPSCALED_COUNT, seed=1), UPSCALE)
    assert len(found) >= 0.9 * (LFW_COUNT + FGNET_COUNT), "HOG found too few faces to test"
    assert len(upscaled) >= 0.8 * UPSCALED_COUNT
    return found + upscaled


def _pyramid_levels(details: ChipDetails) -> int:
    """How many pyramid_down<2> steps dlib takes before sampling this (square) chip: rect_down
    halves the corner distance, so a width w becomes (w - 1) / 2 + 1."""
    width, levels = details.rect[2] - details.rect[0] + 1, 0
    while ((width - 1) / 2 + 1) ** 2 > details.size:
        width, levels = (width - 1) / 2 + 1, levels + 1
    return levels


def test_chip_details_match_dlib(faces: list[DlibFace]) -> None:
    for face in faces:
        ours = chip_details(face.landmarks, 150, 0.25)
        ref = dlib.get_face_chip_details(face.shape, 150, 0.25)
        ref_rect = (ref.rect.left(), ref.rect.top(), ref.rect.right(), ref.rect.bottom())
        np.testing.assert_allclose(ours.rect, ref_rect, atol=1e-9, err_msg=face.label)
        assert ours.angle == pytest.approx(ref.angle, abs=1e-12), face.label
        assert (ours.rows, ours.cols) == (ref.rows, ref.cols) == (150, 150)


def test_chips_match_dlib_get_face_chip(faces: list[DlibFace]) -> None:
    diffs = []
    for face in faces:
        ours = extract_chips(face.image, [chip_details(face.landmarks)])[0]
        ref = dlib.get_face_chip(face.image, face.shape, 150, 0.25)
        assert ours.shape == ref.shape == (150, 150, 3)
        diffs.append(np.abs(ours.astype(np.int16) - ref.astype(np.int16)))
    all_diffs = np.stack(diffs)
    exact = float((all_diffs == 0).mean())
    print(f"{len(faces)} chips: max diff {all_diffs.max()}, exact pixels {exact:.8f}")
    assert all_diffs.max() <= 1
    assert exact >= 0.999
    # The large faces really went through the pyramid (1+ levels, some 2+).
    levels = [_pyramid_levels(chip_details(f.landmarks)) for f in faces]
    assert sum(level >= 1 for level in levels) >= 15
    assert max(levels) >= 2


def test_several_faces_share_dlibs_pyramid(faces: list[DlibFace]) -> None:
    """dlib pyramids the union of all chips' regions once, which shifts the pyramid grid of
    each face: two upscaled photos side by side, cut together, must still match dlib."""
    large = [f for f in faces if _pyramid_levels(chip_details(f.landmarks)) >= 1][:6]
    predictor = dlib.shape_predictor(str(DLIB_SHAPE5.path()))
    for left, right in zip(large[::2], large[1::2], strict=True):
        height = max(left.image.shape[0], right.image.shape[0])
        canvas = np.zeros((height + 7, left.image.shape[1] + right.image.shape[1] + 5, 3), np.uint8)
        canvas[: left.image.shape[0], : left.image.shape[1]] = left.image
        offset = left.image.shape[1] + 5
        canvas[7 : 7 + right.image.shape[0], offset : offset + right.image.shape[1]] = right.image
        shapes = [
            left.shape,
            predictor(canvas, dlib.translate_rect(right.shape.rect, dlib.point(offset, 7))),
        ]
        points = [np.array([(p.x, p.y) for p in s.parts()]) for s in shapes]
        ours = extract_chips(canvas, [chip_details(p) for p in points])
        refs = np.stack(dlib.get_face_chips(canvas, dlib.full_object_detections(shapes), 150, 0.25))
        diff = np.abs(ours.astype(np.int16) - refs.astype(np.int16))
        assert diff.max() <= 1 and (diff == 0).mean() >= 0.999, (left.label, right.label)


def test_pyramid_down_matches_dlib(faces: list[DlibFace]) -> None:
    pyramid = dlib.pyramid_down(2)
    for face in faces[:: max(1, len(faces) // 12)]:
        for image in (face.image, face.image[3:, 1:-2]):  # odd and even sizes
            ours = pyramid_down_2(np.ascontiguousarray(image))
            np.testing.assert_array_equal(ours, pyramid(np.ascontiguousarray(image)))
    assert pyramid_down_2(np.zeros((8, 40, 3), np.uint8)).size == 0  # dlib: 8 px -> empty


def test_chip_outside_the_image_is_black(faces: list[DlibFace]) -> None:
    face = faces[0]
    shifted = face.landmarks - np.array([3 * face.image.shape[1], 0])  # far off the left edge
    chip = extract_chips(face.image, [chip_details(shifted)])[0]
    assert not chip.any()


def test_rejects_bad_inputs(faces: list[DlibFace]) -> None:
    with pytest.raises(ValueError):
        chip_details(np.zeros((68, 2)))
    with pytest.raises(ValueError):
        extract_chips(faces[0].image[..., 0], [chip_details(faces[0].landmarks)])
    assert extract_chips(faces[0].image, []).shape[0] == 0
