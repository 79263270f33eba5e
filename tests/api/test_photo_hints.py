"""A photo with no fit face answers with a hint the app can show, and its reasons (issue 21)."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from PIL import Image

from matcher.service.faces import FaceFeedback
from matcher.service.photo_hints import NO_FACE_MESSAGE, photo_hint
from matcher.store import Role
from tests.api.builders import case_body
from tests.api.conftest import auth
from tests.data import lfw_photos, require_test_data


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92)
    return out.getvalue()


def _no_face() -> bytes:
    """The top-left corner of a research photo (background), blown up: no face in it."""
    photo = Image.open(lfw_photos()[0].path).convert("RGB")
    return _jpeg(photo.crop((0, 0, 60, 60)).resize((320, 320)))


def _small_face() -> bytes:
    """A research photo shrunk so its face is found but narrower than min_face_px."""
    photo = Image.open(lfw_photos()[0].path).convert("RGB")
    canvas = Image.new("RGB", (640, 640), (128, 128, 128))
    canvas.paste(photo.resize((84, 84)), (280, 280))
    return _jpeg(canvas)


def test_a_sighting_without_a_face_gets_the_hint(client: TestClient,
                                                 keys: dict[Role, str]) -> None:
    require_test_data()
    answer = client.post("/v1/sightings", headers=auth(keys[Role.TIP_APP]),
                         files={"photo": ("bg.jpg", _no_face(), "image/jpeg")})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["faces"] == []
    assert body["hint"] == {"message": NO_FACE_MESSAGE, "reasons": ["no_face"]}


def test_a_small_face_says_too_small_and_a_fit_one_no_hint(client: TestClient,
                                                           keys: dict[Role, str]) -> None:
    require_test_data()
    case = client.post("/v1/cases", json=case_body("Ada"), headers=auth(keys[Role.CASE_MANAGER]))
    assert case.status_code == 201, case.text
    photos = f"/v1/cases/{case.json()['id']}/photos"
    small = client.post(photos, headers=auth(keys[Role.CASE_MANAGER]),
                        files={"photo": ("s.jpg", _small_face(), "image/jpeg")})
    assert small.status_code == 201, small.text
    body = small.json()
    assert body["faces"] and not any(face["fit"] for face in body["faces"]), body
    assert "too_small" in body["hint"]["reasons"]
    assert "too small: take the photo closer" in body["hint"]["message"]
    fit = client.post(photos, headers=auth(keys[Role.CASE_MANAGER]), files={
        "photo": ("f.jpg", lfw_photos()[0].path.read_bytes(), "image/jpeg")})
    assert fit.status_code == 201 and fit.json()["hint"] is None


def test_hints_name_every_reason_once() -> None:
    box = (0.0, 0.0, 10.0, 10.0)
    blurred_small = FaceFeedback(box, False, ("too_small", "too_blurry"))
    hint = photo_hint([blurred_small, FaceFeedback(box, False, ("too_small",))])
    assert hint is not None and hint.reasons == ("too_small", "too_blurry")
    assert hint.message == ("none of the 2 faces is usable: the face is too small: take the "
                            "photo closer; the face is blurred: hold the camera still, in good "
                            "light")
    assert photo_hint([blurred_small, FaceFeedback(box, True, ())]) is None
    empty = photo_hint([])
    assert empty is not None and empty.reasons == ("no_face",)
