"""What the service raises: its own errors, and the store's that pass through it.

The API layer maps these to HTTP status codes. The store's errors are re-exported here, not
moved: the store raises them and the service lets them through (a case that does not exist, a
value the schema cannot hold, the last admin key), so they are part of what a service call can
raise, and a caller that handles them needs to import only the service.
"""

from __future__ import annotations

from matcher.store.errors import (
    CandidateNotFound,
    CaseNotFound,
    InvalidRecord,
    NotFound,
    SightingNotFound,
    StoreError,
    UnsupportedPhoto,
)
from matcher.store.keys import ApiKeyNotFound, LastAdminKey

__all__ = [
    "ApiKeyNotFound",
    "CandidateNotFound",
    "CaseNotFound",
    "DuplicatePhoto",
    "InvalidAdminKey",
    "InvalidRecord",
    "LastAdminKey",
    "ModelNotEmbedded",
    "NotFound",
    "ServiceError",
    "SightingNotFound",
    "StoreError",
    "UnsupportedPhoto",
]


class ServiceError(Exception):
    """Base of every error the service raises on purpose."""


class InvalidAdminKey(ServiceError):
    """MATCHER_ADMIN_KEY is not a key of the form `mk_<12 hex>_<secret of 32+ chars>`."""


class ModelNotEmbedded(ServiceError):
    """The configured model has no vector of any stored face while other models have: the
    model settings changed without a reindex, and serving would match nothing."""


class DuplicatePhoto(ServiceError):
    """The case already has a photo with these pixels."""

    def __init__(self, message: str, photo_id: int) -> None:
        super().__init__(message)
        self.photo_id = photo_id
