"""The review page for investigators: a static HTML shell, its scripts and its style sheet.

The files hold no data and no key; the scripts fetch everything from the keyed JSON API
(`/v1/review/...`, `/v1/cases/...`). `matcher/api/routes/page.py` serves them.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

_SCRIPT = "text/javascript; charset=utf-8"
# The only files served, by the name in their URL, with their media type. The script is ES
# modules, one job each: review.js (the entry) imports the others by these names.
STATIC_FILES = {
    "review.html": "text/html; charset=utf-8",
    "review.js": _SCRIPT,
    "api.js": _SCRIPT,
    "format.js": _SCRIPT,
    "queue.js": _SCRIPT,
    "lineup.js": _SCRIPT,
    "caseview.js": _SCRIPT,
    "zoom.js": _SCRIPT,
    "keys.js": _SCRIPT,
    "review.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


def static_file(name: str) -> Traversable:
    """One of STATIC_FILES (KeyError for any other name: nothing else is reachable)."""
    if name not in STATIC_FILES:
        raise KeyError(name)
    return files(__name__) / "static" / name
