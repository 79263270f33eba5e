"""What the service raises on its own. The API layer maps these to HTTP status codes."""

from __future__ import annotations


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
