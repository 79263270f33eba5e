"""A corpus of hostile and malformed requests, built in code: no binary file enters the
repository. Each builder returns one `Probe`: the request, and the answer it must get.

Photos are built from one real face photo (`Materials.face`, an LFW-dev photo cropped to
250x190, not square, so a wrong rotation shows in the stored size). Valid but unusual inputs
(EXIF orientations, CMYK, 16-bit, animated GIF, polyglots) must come out as the upright photo;
everything else must get a 4xx with a JSON body saying what was wrong.
"""

from __future__ import annotations

import base64
import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from matcher.store import Role

# The app of tests/api/test_hostile.py runs with these, so size probes stay small and fast.
MAX_IMAGE_BYTES = 2 * 1024 * 1024
MAX_REQUEST_BYTES = 3 * 1024 * 1024
MAX_IMAGE_PIXELS = 20_000_000
SIGHTINGS = "/v1/sightings"
BOUNDARY = "hostile-boundary-7d1c"

Files = list[tuple[str, tuple[str, bytes, str]]]


@dataclass(frozen=True, eq=False)
class Materials:
    face: Image.Image  # upright RGB, 250x190, one fit face

    @property
    def pixels(self) -> NDArray[np.uint8]:
        return np.asarray(self.face, dtype=np.uint8)

    def jpeg(self, image: Image.Image | None = None, **save: Any) -> bytes:
        out = io.BytesIO()
        (image or self.face).save(out, format="JPEG", quality=92, **save)
        return out.getvalue()

    def png(self, image: Image.Image | None = None, **save: Any) -> bytes:
        out = io.BytesIO()
        (image or self.face).save(out, format="PNG", **save)
        return out.getvalue()


@dataclass(frozen=True, eq=False)
class Probe:
    """One request and what it must get: `status`, and `error` (the JSON code) for a 4xx.

    For a 201: `upright` is what the stored photo must look like (None: any pixels), `face`
    says a fit face must be found, `absent` lists byte strings the stored file must not hold.
    """

    method: str
    url: str
    status: int
    error: str | None = None
    role: Role | None = Role.TIP_APP
    files: Files | None = None
    data: dict[str, str | list[str]] | None = None
    content: bytes | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False  # send `content` in 64 KB chunks without a Content-Length
    upright: NDArray[np.uint8] | None = None
    face: bool = False
    absent: tuple[bytes, ...] = ()


BUILDERS: dict[str, Callable[[Materials], Probe]] = {}


def probe(builder: Callable[[Materials], Probe]) -> Callable[[Materials], Probe]:
    BUILDERS[builder.__name__] = builder
    return builder


def upload(data: bytes, status: int = 422, error: str | None = None, *, name: str = "tip.jpg",
           content_type: str = "image/jpeg", **expect: Any) -> Probe:
    return Probe("POST", SIGHTINGS, status, error, files=[("photo", (name, data, content_type))],
                 **expect)


def fields(m: Materials, error: str = "invalid_request", **values: str | list[str]) -> Probe:
    """A good photo with bad form fields."""
    return Probe("POST", SIGHTINGS, 422, error, files=[("photo", ("p.jpg", m.jpeg(),
                                                                  "image/jpeg"))], data=values)


def multipart(*parts: tuple[bytes, bytes]) -> tuple[bytes, dict[str, str]]:
    """A hand-made multipart body from (Content-Disposition value, body) pairs: for what httpx
    will not send (non-UTF-8 names, a photo without a file name...)."""
    out = b""
    for disposition, body in parts:
        out += (b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: " + disposition
                + b"\r\n\r\n" + body + b"\r\n")
    out += b"--" + BOUNDARY.encode() + b"--\r\n"
    return out, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_raw(width: int, height: int, depth: int, colour: int, rows: bytes,
            extra: bytes = b"") -> bytes:
    """A PNG from already-filtered scanlines (`extra`: chunks before IDAT)."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + extra
            + png_chunk(b"IDAT", zlib.compress(rows, 9)) + png_chunk(b"IEND", b""))


def with_orientation(m: Materials, orientation: int) -> bytes:
    """The face photo stored so that EXIF `orientation` turns it upright again."""
    stored = {  # the inverse of each orientation's turn
        1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }[orientation]
    image = m.face if stored is None else m.face.transpose(stored)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return m.jpeg(image, exif=exif.tobytes())


def _orientation_probe(orientation: int) -> Callable[[Materials], Probe]:
    def build(m: Materials) -> Probe:
        return upload(with_orientation(m, orientation), 201, upright=m.pixels, face=True,
                      absent=(b"Exif",))

    build.__name__ = f"exif_orientation_{orientation}"
    return build


for _orientation in range(1, 9):
    probe(_orientation_probe(_orientation))


# --- not images, or broken ones ----------------------------------------------------------------

@probe
def zero_bytes(m: Materials) -> Probe:
    return upload(b"", error="empty")


@probe
def text_named_jpg(m: Materials) -> Probe:
    return upload(b"Dear police, I saw her at the station.\n", error="not_an_image")


@probe
def html_named_jpg(m: Materials) -> Probe:
    return upload(b"<!doctype html><html><script>alert(document.cookie)</script></html>",
                  error="not_an_image")


@probe
def svg_named_png(m: Materials) -> Probe:
    svg = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
           b'<image href="file:///etc/passwd"/></svg>')
    return upload(svg, error="not_an_image", name="tip.png", content_type="image/png")


@probe
def ppm_named_jpg(m: Materials) -> Probe:  # PIL reads PPM; we never run its parser
    return upload(b"P6\n2 2\n255\n" + bytes(12), error="not_an_image")


@probe
def heic_named_jpg(m: Materials) -> Probe:
    return upload(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64),
                  error="unsupported")


@probe
def truncated_jpeg(m: Materials) -> Probe:
    data = m.jpeg()
    return upload(data[: len(data) * 3 // 5], error="truncated")


@probe
def jpeg_header_only(m: Materials) -> Probe:
    return upload(m.jpeg()[:40], error="truncated")


@probe
def truncated_png(m: Materials) -> Probe:
    data = m.png()
    return upload(data[: len(data) // 2], error="truncated", name="t.png",
                  content_type="image/png")


@probe
def png_damaged_data(m: Materials) -> Probe:
    data = bytearray(m.png())
    start = data.index(b"IDAT") + 4
    data[start + 10: start + 400] = bytes(390)  # the CRC no longer matches either
    return upload(bytes(data), error="corrupt", name="d.png", content_type="image/png")


@probe
def float_tiff(m: Materials) -> Probe:  # a real image whose samples we cannot read as colour
    out = io.BytesIO()
    Image.fromarray(np.zeros((16, 16), np.float32), mode="F").save(out, format="TIFF")
    return upload(out.getvalue(), error="unsupported", name="f.tif", content_type="image/tiff")


# --- too big -------------------------------------------------------------------------------------

@probe
def png_bomb_declared(m: Materials) -> Probe:
    """100,000 x 100,000 px declared in a 100-byte file."""
    return upload(png_raw(100_000, 100_000, 8, 0, b"\x00" * 64), 413, "too_large",
                  name="b.png", content_type="image/png")


@probe
def png_bomb_real(m: Materials) -> Probe:
    """25 MP of zeros: about 25 KB compressed, 75 MB decoded."""
    side = 5000
    return upload(png_raw(side, side, 8, 0, (b"\x00" + bytes(side)) * side), 413, "too_large",
                  name="b.png", content_type="image/png")


@probe
def gif_bomb_screen(m: Materials) -> Probe:
    out = io.BytesIO()
    Image.new("P", (8, 8)).save(out, format="GIF")
    data = bytearray(out.getvalue())
    data[6:10] = struct.pack("<HH", 65535, 65535)  # the logical screen
    return upload(bytes(data), 413, "too_large", name="b.gif", content_type="image/gif")


@probe
def bmp_bomb_declared(m: Materials) -> Probe:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, format="BMP")
    data = bytearray(out.getvalue())
    data[18:26] = struct.pack("<ii", 40_000, 40_000)
    return upload(bytes(data), 413, "too_large", name="b.bmp", content_type="image/bmp")


@probe
def photo_over_image_limit(m: Materials) -> Probe:
    data = m.jpeg()
    return upload(data + bytes(MAX_IMAGE_BYTES + 1 - len(data)), 413, "too_large")


@probe
def body_over_request_limit(m: Materials) -> Probe:
    return Probe("POST", SIGHTINGS, 413, "too_large", content=bytes(MAX_REQUEST_BYTES + 1),
                 headers={"Content-Type": "application/octet-stream"})


@probe
def chunked_body_over_request_limit(m: Materials) -> Probe:
    """No Content-Length: the limit counts the bytes as they stream."""
    body, headers = multipart((b'form-data; name="photo"; filename="p.jpg"',
                               m.jpeg() + bytes(MAX_REQUEST_BYTES)))
    return Probe("POST", SIGHTINGS, 413, "too_large", content=body, headers=headers,
                 chunked=True)


# --- odd but valid: must come out upright ------------------------------------------------------

@probe
def wide_60000x1(m: Materials) -> Probe:
    row = (bytes(range(256)) * 704)[: 60_000 * 3]
    return upload(png_raw(60_000, 1, 8, 2, b"\x00" + row), 201, name="w.png",
                  content_type="image/png")


@probe
def tall_1x60000(m: Materials) -> Probe:
    return upload(png_raw(1, 60_000, 8, 0, b"\x00\x80" * 60_000), 201, name="t.png",
                  content_type="image/png")


@probe
def one_pixel(m: Materials) -> Probe:
    return upload(m.png(Image.new("RGB", (1, 1), (255, 0, 0))), 201, name="o.png",
                  content_type="image/png")


@probe
def cmyk_jpeg(m: Materials) -> Probe:
    return upload(m.jpeg(m.face.convert("CMYK")), 201, upright=m.pixels, face=True)


@probe
def grey_16bit_png(m: Materials) -> Probe:
    grey = np.asarray(m.face.convert("L"), dtype=np.uint16) * 257
    image = Image.fromarray(grey)  # I;16
    return upload(m.png(image), 201, name="g.png", content_type="image/png",
                  upright=np.repeat(np.asarray(m.face.convert("L"))[:, :, None], 3, axis=2),
                  face=True)


@probe
def rgb_16bit_png(m: Materials) -> Probe:
    wide = m.pixels.astype(">u2") * 257
    rows = b"".join(b"\x00" + row.tobytes() for row in wide)
    height, width = m.pixels.shape[:2]
    return upload(png_raw(width, height, 16, 2, rows), 201, name="c.png",
                  content_type="image/png", upright=m.pixels, face=True)


@probe
def animated_gif(m: Materials) -> Probe:
    frames = [m.face, Image.new("RGB", m.face.size, (0, 0, 0)),
              Image.new("RGB", m.face.size, (255, 255, 255))]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100,
                   loop=0)
    return upload(out.getvalue(), 201, name="a.gif", content_type="image/gif", face=True)


@probe
def exif_orientation_out_of_range(m: Materials) -> Probe:
    exif = Image.Exif()
    exif[0x0112] = 9
    return upload(m.jpeg(exif=exif.tobytes()), 201, upright=m.pixels, face=True)


@probe
def exif_huge_block(m: Materials) -> Probe:
    """One APP1 segment as large as JPEG allows (64 KB), then 20 more of junk."""
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x010E] = "A" * 64_000  # ImageDescription
    data = m.jpeg(exif=exif.tobytes())
    junk = b"\xff\xe1" + struct.pack(">H", 65_000) + b"Exif\x00\x00" + bytes(64_992)
    return upload(data[:2] + junk * 20 + data[2:], 201, upright=m.pixels, face=True,
                  absent=(b"AAAAAAAA",))


@probe
def exif_hostile_ifd(m: Materials) -> Probe:
    """A PNG eXIf chunk whose IFD claims 65,535 entries of 4 GB each and points at itself."""
    entry = struct.pack(">HHII", 0x0112, 4, 0xFFFFFFFF, 0xFFFFFFF0)
    tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 0xFFFF) + entry * 2000
    tiff += struct.pack(">I", 8)  # the next IFD is this one again
    rows = b"".join(b"\x00" + row.tobytes() for row in m.pixels)
    height, width = m.pixels.shape[:2]
    data = png_raw(width, height, 8, 2, rows, extra=png_chunk(b"eXIf", tiff))
    return upload(data, 201, name="e.png", content_type="image/png", upright=m.pixels,
                  face=True)


# --- polyglots: the photo is kept, the rest is not --------------------------------------------

@probe
def polyglot_jpeg_zip(m: Materials) -> Probe:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("payload.sh", "#!/bin/sh\nrm -rf /\n")
    return upload(m.jpeg() + archive.getvalue(), 201, upright=m.pixels, face=True,
                  absent=(b"PK\x03\x04", b"payload.sh"))


@probe
def polyglot_gif_js(m: Materials) -> Probe:
    """GIF89a/*...*/=alert(1): a GIF that is also a script (its width is "/*" = 10799 px)."""
    out = io.BytesIO()
    Image.new("P", (16, 16)).save(out, format="GIF")
    data = bytearray(out.getvalue())
    data[6:8] = b"/*"
    return upload(bytes(data) + b"*/=1;alert(document.domain);", 201, name="p.gif",
                  content_type="image/gif", absent=(b"alert",))


@probe
def polyglot_png_html(m: Materials) -> Probe:
    return upload(m.png() + b"<html><script>alert(1)</script></html>", 201, name="p.png",
                  content_type="image/png", upright=m.pixels, face=True, absent=(b"<script",))


@probe
def jpeg_comment_php(m: Materials) -> Probe:
    data = m.jpeg()
    comment = b"<?php system($_GET['c']); ?>"
    segment = b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
    return upload(data[:2] + segment + data[2:], 201, upright=m.pixels, face=True,
                  absent=(b"<?php",))


# --- the form ------------------------------------------------------------------------------------

@probe
def photo_declared_as_text(m: Materials) -> Probe:  # the bytes decide, not the label
    return upload(m.jpeg(), 201, name="p.txt", content_type="text/plain", upright=m.pixels,
                  face=True)


@probe
def json_body(m: Materials) -> Probe:
    return Probe("POST", SIGHTINGS, 422, "invalid_request", json={"photo": "aGVsbG8=",
                                                                  "lat": 1, "lon": 2})


@probe
def urlencoded_body(m: Materials) -> Probe:
    return Probe("POST", SIGHTINGS, 422, "invalid_request", data={"photo": "x", "lat": "1"})


@probe
def multipart_without_file(m: Materials) -> Probe:
    body, headers = multipart((b'form-data; name="note"', b"she was wearing a red coat"))
    return Probe("POST", SIGHTINGS, 422, "invalid_request", content=body, headers=headers)


@probe
def photo_without_file_name(m: Materials) -> Probe:  # optional in multipart: never read
    body, headers = multipart((b'form-data; name="photo"', m.jpeg()))
    return Probe("POST", SIGHTINGS, 201, content=body, headers=headers, upright=m.pixels,
                 face=True)


@probe
def photo_with_empty_file_name(m: Materials) -> Probe:
    body, headers = multipart((b'form-data; name="photo"; filename=""', m.jpeg()))
    return Probe("POST", SIGHTINGS, 201, content=body, headers=headers, upright=m.pixels,
                 face=True)


@probe
def photo_without_file_name_or_bytes(m: Materials) -> Probe:  # a file input left empty
    body, headers = multipart((b'form-data; name="photo"', b""))
    return Probe("POST", SIGHTINGS, 422, "invalid_request", content=body, headers=headers)


@probe
def note_not_utf8(m: Materials) -> Probe:  # stored as Latin-1 mojibake before
    body, headers = multipart((b'form-data; name="photo"; filename="p.jpg"', m.jpeg()),
                              (b'form-data; name="note"', b"\xff\xfe\xed\xa0\x80"))
    return Probe("POST", SIGHTINGS, 422, "invalid_request", content=body, headers=headers)


@probe
def two_photos(m: Materials) -> Probe:
    photo = ("p.jpg", m.jpeg(), "image/jpeg")
    return Probe("POST", SIGHTINGS, 422, "invalid_request",
                 files=[("photo", photo), ("photo", photo)])


@probe
def multipart_garbage(m: Materials) -> Probe:
    return Probe("POST", SIGHTINGS, 400, "bad_request", content=b"\x00\xff" * 500, headers={
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})


@probe
def multipart_without_boundary(m: Materials) -> Probe:
    body, _ = multipart((b'form-data; name="photo"; filename="p.jpg"', m.jpeg()))
    return Probe("POST", SIGHTINGS, 400, "bad_request", content=body,
                 headers={"Content-Type": "multipart/form-data"})


@probe
def multipart_unterminated(m: Materials) -> Probe:
    body, headers = multipart((b'form-data; name="photo"; filename="p.jpg"', m.jpeg()))
    # python-multipart drops a part that never ends: the photo is then missing
    return Probe("POST", SIGHTINGS, 422, "invalid_request", content=body[: len(body) // 2],
                 headers=headers)


@probe
def non_utf8_file_name(m: Materials) -> Probe:
    body, headers = multipart(
        (b'form-data; name="photo"; filename="\xff\xfe\xc3(\x80.jpg"', m.jpeg()))
    return Probe("POST", SIGHTINGS, 201, content=body, headers=headers, upright=m.pixels,
                 face=True)


@probe
def traversal_file_name(m: Materials) -> Probe:
    return upload(m.jpeg(), 201, name="../../../../../../etc/passwd", upright=m.pixels,
                  face=True)


@probe
def unknown_field(m: Materials) -> Probe:
    return fields(m, latitude="51.5", longitude="-0.1")


@probe
def repeated_field(m: Materials) -> Probe:
    return fields(m, lat=["10", "20"], lon="0")


@probe
def lat_91(m: Materials) -> Probe:
    return fields(m, lat="91", lon="0")


@probe
def lon_minus_181(m: Materials) -> Probe:
    return fields(m, lat="0", lon="-181")


@probe
def lat_without_lon(m: Materials) -> Probe:
    return fields(m, "invalid", lat="10")


@probe
def lon_without_lat(m: Materials) -> Probe:
    return fields(m, "invalid", lon="10")


@probe
def lat_nan(m: Materials) -> Probe:
    return fields(m, lat="NaN", lon="0")


@probe
def lon_infinity(m: Materials) -> Probe:
    return fields(m, lat="0", lon="-Infinity")


@probe
def lat_abc(m: Materials) -> Probe:
    return fields(m, lat="abc", lon="0")


@probe
def date_impossible(m: Materials) -> Probe:
    return fields(m, taken_at="2020-13-45T25:61:00")


@probe
def date_words(m: Materials) -> Probe:
    return fields(m, taken_at="yesterday afternoon")


@probe
def date_in_the_future(m: Materials) -> Probe:
    return fields(m, taken_at="2999-01-01T00:00:00+00:00")


@probe
def date_before_year_1(m: Materials) -> Probe:  # 0001-01-01 at +14:00 is in year 0 in UTC
    return fields(m, taken_at="0001-01-01T00:00:00+14:00")


@probe
def date_offset_out_of_range(m: Materials) -> Probe:
    return fields(m, taken_at="2020-01-01T00:00:00+25:00")


@probe
def note_too_long(m: Materials) -> Probe:
    return fields(m, note="x" * 2001)


@probe
def contact_too_long(m: Materials) -> Probe:
    return fields(m, reporter_contact="a" * 495 + "@x.org")


@probe
def note_with_nul(m: Materials) -> Probe:
    return fields(m, note="red coat\x00'; DROP TABLE sightings; --")


@probe
def note_over_part_limit(m: Materials) -> Probe:  # text parts over 1 MB stop the parser
    return Probe("POST", SIGHTINGS, 400, "bad_request", data={"note": "x" * (1024 * 1024 + 1)},
                 files=[("photo", ("p.jpg", m.jpeg(), "image/jpeg"))])


# --- URLs and keys -------------------------------------------------------------------------------

def read(url: str, status: int, error: str, role: Role | None = Role.INVESTIGATOR,
         method: str = "GET", **extra: Any) -> Probe:
    return Probe(method, url, status, error, role=role, **extra)


@probe
def id_path_traversal(m: Materials) -> Probe:
    return read("/v1/sightings/..%2f..%2fetc%2fpasswd", 404, "not_found")


@probe
def id_dot_segments_encoded(m: Materials) -> Probe:
    return read("/v1/sightings/%2e%2e/%2e%2e/keys", 404, "not_found")


@probe
def id_with_nul(m: Materials) -> Probe:
    return read("/v1/cases/1%00", 400, "invalid_request")


@probe
def id_negative(m: Materials) -> Probe:
    return read("/v1/sightings/-1", 422, "invalid_request")


@probe
def id_zero_crop(m: Materials) -> Probe:
    return read("/v1/faces/0/crop", 422, "invalid_request")


@probe
def id_huge(m: Materials) -> Probe:
    return read("/v1/sightings/99999999999999999999999999", 422, "invalid_request")


@probe
def id_just_over_int64(m: Materials) -> Probe:
    return read(f"/v1/cases/{2**63}", 422, "invalid_request")


@probe
def id_largest_int64(m: Materials) -> Probe:  # a valid id that does not exist
    return read(f"/v1/sightings/{2**63 - 1}/candidates", 404, "not_found")


@probe
def id_float(m: Materials) -> Probe:
    return read("/v1/faces/1.5/crop", 422, "invalid_request")


@probe
def id_huge_key_delete(m: Materials) -> Probe:
    return read(f"/v1/keys/{10**30}", 422, "invalid_request", role=Role.ADMIN, method="DELETE")


@probe
def id_huge_case_erase(m: Materials) -> Probe:
    return read(f"/v1/cases/{2**64}", 422, "invalid_request", role=Role.CASE_MANAGER,
                method="DELETE")


@probe
def queue_cursor_id_over_int64(m: Materials) -> Probe:
    cursor = base64.urlsafe_b64encode(f"d|0.5|{2**64}".encode()).decode().rstrip("=")
    return read(f"/v1/review/queue?cursor={cursor}", 422, "invalid")


@probe
def queue_cursor_distance_not_a_number(m: Materials) -> Probe:
    cursor = base64.urlsafe_b64encode(b"d|nan|1").decode().rstrip("=")
    return read(f"/v1/review/queue?cursor={cursor}", 422, "invalid")


def new_case(**dates: str) -> Probe:
    body = {"category": "child", "name": "Ada", "age_when_missing": 8,
            "missing_since": "2020-05-01", **dates}
    return Probe("POST", "/v1/cases", 422, "invalid_request", role=Role.CASE_MANAGER,
                 json=body)


@probe
def case_missing_since_year_1(m: Materials) -> Probe:  # ages and gaps from it overflow
    return new_case(missing_since="0001-06-01")


@probe
def case_born_in_year_9999(m: Materials) -> Probe:
    return new_case(date_of_birth="9999-01-01")


@probe
def page_cursor_huge(m: Materials) -> Probe:
    return read(f"/v1/cases?after_id={10**25}", 422, "invalid_request")


@probe
def page_cursor_negative(m: Materials) -> Probe:
    return read("/v1/sightings?before_id=-5", 422, "invalid_request")


@probe
def query_with_nul(m: Materials) -> Probe:
    return read("/v1/audit?actor=desk%00", 400, "invalid_request", role=Role.ADMIN)


@probe
def query_date_out_of_range_in_utc(m: Materials) -> Probe:
    return read("/v1/review/queue?since=0001-01-01T00:00:00%2B14:00", 422, "invalid_request")


@probe
def query_date_past_year_9999_in_utc(m: Materials) -> Probe:
    return read("/v1/audit?until=9999-12-31T23:59:59-14:00", 422, "invalid_request",
                role=Role.ADMIN)


@probe
def unknown_route(m: Materials) -> Probe:
    return read("/v1/../../etc/passwd%2f", 404, "not_found")


@probe
def wrong_method(m: Materials) -> Probe:
    return read(SIGHTINGS, 405, "method_not_allowed", method="PUT", content=b"{}")


@probe
def huge_junk_key(m: Materials) -> Probe:
    return read("/v1/sightings", 401, "unauthenticated", role=None,
                headers={"Authorization": "Bearer " + "mk_" + "z" * 8000})


# --- JSON bodies ---------------------------------------------------------------------------------

CASE = {"category": "child", "name": "Ada", "age_when_missing": 8, "missing_since": "2020-05-01"}


def case_json(status: int, error: str, *, content: bytes | None = None,
              json: Any = None) -> Probe:
    headers = {"Content-Type": "application/json"} if content is not None else {}
    return Probe("POST", "/v1/cases", status, error, role=Role.CASE_MANAGER, content=content,
                 json=json, headers=headers)


@probe
def json_deeply_nested(m: Materials) -> Probe:
    return case_json(400, "bad_request", content=b'{"name": ' + b"[" * 100_000
                     + b"]" * 100_000 + b"}")


@probe
def json_not_utf8(m: Materials) -> Probe:
    return case_json(400, "bad_request", content=b'{"name": "\xff\xfe", "category": 1}')


@probe
def json_name_with_nul(m: Materials) -> Probe:
    return case_json(422, "invalid_request", json={**CASE, "name": "Ada\x00"})


@probe
def json_unknown_field(m: Materials) -> Probe:
    return case_json(422, "invalid_request", json={**CASE, "id": 1, "status": "found"})


@probe
def json_huge_number(m: Materials) -> Probe:
    return case_json(422, "invalid_request", json={**CASE, "age_when_missing": 10**400})


@probe
def key_bad_role(m: Materials) -> Probe:
    return Probe("POST", "/v1/keys", 422, "invalid_request", role=Role.ADMIN,
                 json={"role": "root", "name": "x"})
