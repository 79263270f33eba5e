"""Reading an uploaded photo without trusting its declared size."""

from __future__ import annotations

from fastapi import UploadFile

from matcher.api.errors import UploadTooLarge


async def read_upload(photo: UploadFile, max_bytes: int) -> bytes:
    data = await photo.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadTooLarge(f"the upload is larger than {max_bytes} bytes")
    return data
