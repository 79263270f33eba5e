"""The HTTP API: `create_app(settings)`; routes under /v1, roles checked in dependencies."""

from matcher.api.app import create_app

__all__ = ["create_app"]
