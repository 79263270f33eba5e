"""Exceptions of the face pipeline. The API layer maps these to HTTP status codes."""

from __future__ import annotations


class EmbedError(Exception):
    """Base of every error the face pipeline raises on purpose."""


class ModelFileError(EmbedError):
    """A model file is missing, corrupt, or not the file we expect."""


class DownloadRefused(ModelFileError):
    """Something asked for weights that are not on disk; matcher never downloads at run time."""


class ImageError(EmbedError):
    """The bytes are not a usable image. `reason` is a short machine-readable code."""

    reason = "unusable_image"


class EmptyImage(ImageError):
    reason = "empty"


class NotAnImage(ImageError):
    reason = "not_an_image"


class TruncatedImage(ImageError):
    reason = "truncated"


class ImageTooLarge(ImageError):
    """Too many bytes or pixels (decompression bombs land here before decoding)."""

    reason = "too_large"


class UnsupportedImage(ImageError):
    """A real image in a mode we cannot turn into RGB (e.g. an odd palette or a 0-px side)."""

    reason = "unsupported"


class CorruptImage(ImageError):
    """A recognised format whose data is damaged in some way other than ending early."""

    reason = "corrupt"
