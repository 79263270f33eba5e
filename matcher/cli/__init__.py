"""The `matcher` command line (`python -m matcher`, the `matcher` console script): the top
layer, which alone with the api's app factory and the service's start-up reads `Settings`."""

from matcher.cli.app import app
from matcher.cli.maintenance import MODEL_OPTIONS

__all__ = ["MODEL_OPTIONS", "app"]
