"""``GET /playground``: a page to try the service from a browser. A static page; its script calls the public API
(``/v1/schemas``, ``/v1/extract``) with the API key the user gives it, so it can do nothing the API does not allow."""

from __future__ import annotations

from functools import cache

from litestar import MediaType, Response, get

from extractor.api.assets import STATIC_DIR

__all__ = ["playground"]


@cache
def _page() -> bytes:
    # Outside the folders served as files: the page is only served here, with its headers.
    return (STATIC_DIR / "playground.html").read_bytes()


# The page holds an API key: it may load and call nothing but this service, and no other site may frame it.
_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


@get("/playground", include_in_schema=False, media_type=MediaType.HTML, sync_to_thread=False)
def playground() -> Response[bytes]:
    return Response(_page(), media_type=MediaType.HTML, headers=_HEADERS)
