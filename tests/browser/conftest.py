"""Browser fixtures: the service on a real loopback port (its model faked on another), and headless Chromium with
the network off: every request to a host other than 127.0.0.1 is aborted and recorded, so a page that needs the
internet fails its test.

Chromium is Debian's (``scripts/install-test-tools``), driven by Playwright's Python package. Without it the tests
skip on a developer's machine and fail under ``CI``. Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
import redis
import uvicorn
from litestar import Litestar
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route, sync_playwright

from extractor.app import create_app
from extractor.settings import Settings
from tests.model_server import chat_completion, model_list, serve_model

REDIS_URL = "redis://127.0.0.1:6379/10"
API_KEY = "playground-test-key"
CHROMIUM = Path(os.environ.get("EXTRACTOR_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
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

# What the fake model answers, cut to the properties of the schema it is asked for.
MODEL_ANSWER: dict[str, Any] = {
    "merchant": "ACME Market",
    "date": "2024-03-05",
    "total": 3.7,
    "currency": "USD",
    "items": [{"name": "Bread", "price": 2.5}, {"name": "Milk", "price": 1.2}],
}


def _answer_for(request: httpx2.Request) -> httpx2.Response:
    if request.url.path.endswith("/models"):
        return model_list()
    body = json.loads(request.content)
    schema = body["response_format"]["json_schema"]["schema"]
    answer = {key: value for key, value in MODEL_ANSWER.items() if key in schema.get("properties", {})}
    return chat_completion(json.dumps(answer), prompt_tokens=120, completion_tokens=40)


@contextmanager
def serve_app(app: Litestar) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port, in a thread, until the block ends; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, lifespan="on", ws="none", loop="asyncio", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="service", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the service did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture(scope="module")
def service_url() -> Iterator[str]:
    """The service, API keys on, its model faked; Redis db 10, flushed before and after."""
    store = redis.Redis.from_url(REDIS_URL)
    store.flushdb()
    try:
        with serve_model(_answer_for) as model_url:
            settings = Settings(
                redis_url=REDIS_URL,
                model_base_url=model_url,
                model_enforcement="json_schema",
                model_max_retries=0,
                model_timeout_s=5.0,
                api_keys={API_KEY: "browser"},
                jobs={"run_in_serve": False},
            )
            with serve_app(create_app(settings)) as url:
                yield url
    finally:
        store.flushdb()
        store.close()


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


@dataclass
class OfflineContext:
    """A browser context that reaches 127.0.0.1 only; ``blocked`` lists every other URL a page asked for."""

    context: BrowserContext
    blocked: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("internetdisconnected")


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


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot (of the whole page, or of the window) as a CI artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
