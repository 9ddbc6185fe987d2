"""Browser fixtures: the service on a real loopback port (its model faked on another), and headless Chromium with
the network off: every request to a host other than 127.0.0.1 is aborted and recorded, so a page that needs the
internet fails its test.

Chromium is Debian's (``scripts/install-test-tools``), driven by Playwright's Python package. Without it the tests
skip on a developer's machine and fail under ``CI``. Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.support.browser import OfflineContext, answer_from_schema, browser_service

REDIS_URL = "redis://127.0.0.1:6379/10"
CHROMIUM = Path(os.environ.get("EXTRACTOR_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # A second wall behind the request filter: no name resolves but the loopback address.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


@pytest.fixture(scope="module")
def service_url() -> Iterator[str]:
    """The service, API keys on, its model faked; Redis db 10, flushed before and after."""
    with browser_service(REDIS_URL, answer_from_schema, model_timeout_s=5.0) as url:
        yield url


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        missing = f"no Chromium at {CHROMIUM} (bash scripts/install-test-tools installs Debian's)"
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: the browser tests must run in CI")
        pytest.skip(missing)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # Playwright gives every launch a new, empty profile (--user-data-dir in a temporary folder).
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def offline(browser: Browser) -> Iterator[OfflineContext]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20_000)
    offline = OfflineContext(context)
    context.route("**/*", offline.route)
    try:
        yield offline
    finally:
        context.close()


@pytest.fixture
def page(offline: OfflineContext) -> Page:
    return offline.context.new_page()
