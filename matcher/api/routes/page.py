"""The review page (`/review`) and its script and style sheet, served by the app itself.

They hold no data, so they need no key: the script asks for the investigator's key, keeps it
in the tab's sessionStorage and sends it as `Authorization: Bearer` to the JSON API. Pictures
come through that API too (fetched with the key, shown as blob: URLs). The headers keep the
page to its own origin: no inline or foreign script, no framing, no referrer, no caching.
"""

from __future__ import annotations

from functools import lru_cache

from fastapi import APIRouter, HTTPException, Response

from matcher.web import STATIC_FILES, static_file

router = APIRouter(include_in_schema=False)

STATIC_PREFIX = "/review/static"
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    # The login form is handled by the script; without it, nothing is submitted anywhere
    # (a plain GET submit would put the key in the URL).
    "form-action 'none'",
    "frame-ancestors 'none'",
))
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@lru_cache(maxsize=len(STATIC_FILES))
def _read(name: str) -> bytes:
    return static_file(name).read_bytes()


def _serve(name: str) -> Response:
    return Response(_read(name), media_type=STATIC_FILES[name], headers=PAGE_HEADERS)


@router.get("/review", response_class=Response)
async def review_page() -> Response:
    """The page shell (no data in it)."""
    return _serve("review.html")


@router.get(STATIC_PREFIX + "/{name}", response_class=Response)
async def review_static(name: str) -> Response:
    """The page's script, style sheet and icon; no other name is served."""
    if name not in STATIC_FILES or name == "review.html":
        raise HTTPException(status_code=404, detail="no such file")
    return _serve(name)
