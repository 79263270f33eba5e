"""dlib's own view of real faces (HOG box, 5 landmarks), shared by the parity tests."""

from __future__ import annotations

from dataclasses import dataclass

import dlib
import numpy as np
from numpy.typing import NDArray
from PIL import Image as PILImage

from matcher.embed.weights import DLIB_SHAPE5
from tests.data import Photo


@dataclass(frozen=True)
class DlibFace:
    """One face as dlib sees it: the photo, dlib's landmark object and its points."""

    image: NDArray[np.uint8]
    shape: dlib.full_object_detection
    landmarks: NDArray[np.int64]  # (5, 2), dlib order
    label: str


def load_rgb(photo: Photo, upscale: int = 1) -> NDArray[np.uint8]:
    with PILImage.open(photo.path) as image:
        rgb = image.convert("RGB")
        if upscale != 1:
            rgb = rgb.resize((rgb.width * upscale, rgb.height * upscale), PILImage.BILINEAR)
        return np.asarray(rgb)


def dlib_faces(photos: list[Photo], upscale: int = 1) -> list[DlibFace]:
    """The first HOG face of each photo with dlib's landmarks. Upscaled photos reuse the box
    found on the original (scaled up), which is far cheaper than HOG on a 5 MP image."""
    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(DLIB_SHAPE5.path()))
    faces = []
    for photo in photos:
        original = load_rgb(photo)
        boxes = hog(original, 0) or hog(original, 1)
        if not boxes:
            continue
        box, image = boxes[0], load_rgb(photo, upscale) if upscale != 1 else original
        if upscale != 1:
            corners = (box.left(), box.top(), box.right(), box.bottom())
            box = dlib.rectangle(*(v * upscale for v in corners))
        shape = predictor(image, box)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.int64)
        faces.append(DlibFace(image, shape, points, f"{photo.path.name}x{upscale}"))
    return faces
