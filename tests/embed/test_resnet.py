"""The torch port of dlib's face descriptor network against dlib itself, on real photos.

dlib (dlib-bin) is the oracle: the same weights file run by dlib.face_recognition_model_v1.
First on identical input (dlib's own chips), where only float arithmetic may differ; then end
to end (our chip + our net vs dlib's compute_face_descriptor(img, shape)) on the same dlib
landmarks, including upscaled photos whose faces go through dlib's chip pyramid.
"""

from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from matcher.config import Settings
from matcher.embed.chip import chip_details, extract_chips
from matcher.embed.errors import ModelFileError
from matcher.embed.resnet import (
    RESNET_CONVERTER_VERSION,
    DlibResNet,
    embed_chips,
    load_dlib_resnet,
    normalise_chips,
    parse_resnet,
)
from matcher.embed.weights import DLIB_MMOD, DLIB_RESNET, DLIB_SHAPE5, Arrays, load_converted
from tests.data import fgnet_photos, lfw_photos, sample
from tests.embed.dlib_reference import DlibFace, dlib_faces

# dlib's descriptor costs ~80 ms a face: ~100 faces end to end plus 72 on dlib's chips.
LFW_COUNT, FGNET_COUNT, UPSCALED_COUNT, SAME_CHIP_COUNT = 60, 36, 12, 72


@pytest.fixture(scope="module")
def net(settings: Settings) -> DlibResNet:
    return load_dlib_resnet(settings.cache_dir)


@pytest.fixture(scope="module")
def oracle() -> dlib.face_recognition_model_v1:
    return dlib.face_recognition_model_v1(str(DLIB_RESNET.path()))


@pytest.fixture(scope="module")
def faces() -> list[DlibFace]:
    found = dlib_faces(sample(lfw_photos(), LFW_COUNT, seed=2))
    found += dlib_faces(sample(fgnet_photos(), FGNET_COUNT, seed=2))
    found += dlib_faces(sample(fgnet_photos(), UPSCALED_COUNT, seed=3), upscale=3)
    assert len(found) >= 0.9 * (LFW_COUNT + FGNET_COUNT + UPSCALED_COUNT)
    return found


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return DLIB_RESNET.path().read_bytes()


def _dlib_descriptors(
    oracle: dlib.face_recognition_model_v1, chips: list[NDArray[np.uint8]]
) -> NDArray[np.float64]:
    return np.array([np.asarray(d) for d in oracle.compute_face_descriptor(chips)])


def test_same_chips_give_dlibs_descriptors(
    net: DlibResNet, oracle: dlib.face_recognition_model_v1, faces: list[DlibFace]
) -> None:
    chips = [dlib.get_face_chip(f.image, f.shape, 150, 0.25) for f in faces[:SAME_CHIP_COUNT]]
    ours = embed_chips(net, np.stack(chips), batch_size=16)
    ref = _dlib_descriptors(oracle, chips)
    max_diff = float(np.abs(ours - ref).max())
    print(f"{len(chips)} dlib chips: max abs descriptor diff {max_diff:.2e}")
    assert ours.shape == (len(chips), 128) and ours.dtype == np.float32
    assert max_diff <= 1e-4
    # Raw outputs, as dlib returns them: not L2-normalised.
    assert np.linalg.norm(ours, axis=1).min() > 1.1


def test_end_to_end_matches_compute_face_descriptor(
    net: DlibResNet, oracle: dlib.face_recognition_model_v1, faces: list[DlibFace]
) -> None:
    chips = np.stack([extract_chips(f.image, [chip_details(f.landmarks)])[0] for f in faces])
    ours = embed_chips(net, chips, batch_size=16)
    ref = np.array([np.asarray(oracle.compute_face_descriptor(f.image, f.shape)) for f in faces])
    distances = np.linalg.norm(ours - ref, axis=1)
    print(
        f"{len(faces)} faces end to end: L2 to dlib max {distances.max():.2e}, "
        f"median {np.median(distances):.2e}"
    )
    assert (distances <= 0.01).mean() >= 0.99
    assert distances.max() < 0.05  # even the worst face is far inside the 0.6 match threshold


def test_batches_do_not_change_descriptors(net: DlibResNet, faces: list[DlibFace]) -> None:
    chips = np.stack([dlib.get_face_chip(f.image, f.shape, 150, 0.25) for f in faces[:3]])
    one_by_one = embed_chips(net, chips, batch_size=1)
    together = embed_chips(net, chips, batch_size=3)
    np.testing.assert_allclose(one_by_one, together, atol=1e-5)


def test_normalise_chips_is_dlibs_input_layer(net: DlibResNet, faces: list[DlibFace]) -> None:
    np.testing.assert_allclose(net.input_means.numpy(), [122.782, 117.001, 104.298], atol=1e-4)
    chip = dlib.get_face_chip(faces[0].image, faces[0].shape, 150, 0.25)
    x = normalise_chips(chip[None], net.input_means.numpy())
    assert x.shape == (1, 3, 150, 150) and x.dtype == torch.float32
    expected = (chip.astype(np.float32) - net.input_means.numpy()) / 256
    np.testing.assert_array_equal(x[0].permute(1, 2, 0).numpy(), expected)


def test_parse_resnet_reads_the_whole_model(model_bytes: bytes) -> None:
    arrays = parse_resnet(model_bytes)
    params = sum(v.size for k, v in arrays.items() if k != "input_means")
    assert params == 5_614_592  # every float parameter of the file
    assert arrays["fc.weight"].shape == (128, 256)
    assert arrays["stem_conv.weight"].shape == (32, 3, 7, 7)


@pytest.mark.parametrize("cut", [10, 1000, 11_000_000, 22_466_000])
def test_parse_resnet_refuses_truncated_file(model_bytes: bytes, cut: int) -> None:
    with pytest.raises(ModelFileError):
        parse_resnet(model_bytes[:cut])


def test_parse_resnet_refuses_other_files(model_bytes: bytes) -> None:
    for other in (DLIB_MMOD.path(), DLIB_SHAPE5.path()):
        with pytest.raises(ModelFileError):
            parse_resnet(other.read_bytes())
    with pytest.raises(ModelFileError):
        parse_resnet(model_bytes + b"\x00")
    # Same bytes but one layer of another kind: the topology check must notice.
    swapped = model_bytes.replace(b"max_pool_2", b"avg_pool_2", 1)
    with pytest.raises(ModelFileError, match="avg_pool_2|max_pool"):
        parse_resnet(swapped)


def test_weight_cache_is_written_and_reused(settings: Settings, model_bytes: bytes) -> None:
    first = load_dlib_resnet(settings.cache_dir)
    cached = list(Path(settings.cache_dir).glob("dlib_face_recognition_resnet_model_v1-*.npz"))
    assert len(cached) == 1 and cached[0].name.endswith(f"-{RESNET_CONVERTER_VERSION}.npz")

    def must_not_convert(_: bytes) -> Arrays:
        raise AssertionError("the cached arrays should have been used")

    from_cache = load_converted(
        DLIB_RESNET, must_not_convert, RESNET_CONVERTER_VERSION, settings.cache_dir
    )
    fresh = parse_resnet(model_bytes)
    assert from_cache.keys() == fresh.keys()
    for name, value in fresh.items():
        np.testing.assert_array_equal(from_cache[name], value)
    second = load_dlib_resnet(settings.cache_dir)
    for (name, a), (_, b) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
