"""Errors of the face index. The API layer maps them to HTTP answers; nothing here knows HTTP."""

from __future__ import annotations


class FaceIndexError(Exception):
    """Base of every error raised by matcher.index."""


class InvalidVectors(FaceIndexError, ValueError):
    """Vectors, ids or owners of the wrong shape, type or value (NaN, negative id...)."""


class DimensionMismatch(InvalidVectors):
    """Vectors whose dimension differs from the collection's."""


class DuplicateFaceId(FaceIndexError, ValueError):
    """A face id that is already in the collection (or was removed and not yet compacted)."""


class FaceNotFound(FaceIndexError, KeyError):
    """A face id that is not in the collection."""


class IndexFileError(FaceIndexError):
    """Base of errors about a saved index."""


class IndexNotFound(IndexFileError, FileNotFoundError):
    """No saved index (no manifest) at the given place."""


class IndexCorrupt(IndexFileError):
    """A saved index that is truncated, altered or inconsistent with its manifest."""


class IndexModelMismatch(IndexFileError):
    """A saved index built for another model (id or dimension) than the one running."""


class TooFewFaces(FaceIndexError, ValueError):
    """Too few faces to train the requested index kind (IVF-PQ needs a training sample)."""
