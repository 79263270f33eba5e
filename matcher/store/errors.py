"""What the store raises. The API layer maps these to HTTP status codes."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every store error."""


class NotFound(StoreError):
    """A row asked for by id does not exist."""


class CaseNotFound(NotFound):
    pass


class SightingNotFound(NotFound):
    pass


class CandidateNotFound(NotFound):
    pass


class InvalidRecord(StoreError):
    """A value the schema cannot hold (unknown public field, bad descriptor, lat without lon...)."""


class UnsupportedPhoto(StoreError):
    """Bytes that are not a decodable image, or an image too large to store."""


class MigrationError(StoreError):
    """The database schema could not be brought up to date."""
