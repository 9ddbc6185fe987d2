"""The static files the service's own web pages load: pinned copies of Swagger UI and Scalar, and the playground.

Everything a page needs comes from the package, so the docs and the playground work without internet and run
no third-party code but the pinned copies under ``extractor/static/vendor`` (versions, sources and checksums in
its README).
"""

from __future__ import annotations

from pathlib import Path

from litestar.datastructures import CacheControlHeader
from litestar.router import Router
from litestar.static_files import create_static_files_router

__all__ = ["OWN_DIR", "STATIC_DIR", "static_routers", "static_url"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
OWN_DIR = STATIC_DIR / "app"
_PREFIX = "/static"
# The vendored folders are named by version, so a new version is a new URL: they may be cached for good.
_VENDOR_CACHE = CacheControlHeader(max_age=365 * 24 * 3600, public=True, immutable=True)
# The playground's files change with the service; browsers revalidate them.
_OWN_CACHE = CacheControlHeader(no_cache=True)


def static_url(relative: str) -> str:
    """The URL path of a file under ``extractor/static``: ``vendor/swagger-ui-5.35.0/swagger-ui.css``, ``app/...``."""
    return f"{_PREFIX}/{relative}"


def static_routers() -> list[Router]:
    """``/static/vendor/...`` (cached for good) and ``/static/app/...``, the service's own files (revalidated)."""
    return [
        create_static_files_router(
            path=f"{_PREFIX}/vendor",
            directories=[STATIC_DIR / "vendor"],
            name="static-vendor",
            cache_control=_VENDOR_CACHE,
        ),
        create_static_files_router(
            path=f"{_PREFIX}/app",
            directories=[OWN_DIR],
            name="static-own",
            cache_control=_OWN_CACHE,
        ),
    ]
