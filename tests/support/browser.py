"""What the browser tests share with their fixtures: the service's API key, the fake model's answer, a browser
context that reaches 127.0.0.1 only, and screenshots kept as CI artifacts (``test-artifacts/browser/``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import redis
from playwright.sync_api import BrowserContext, Page, Route

from extractor.app import create_app
from extractor.settings import Settings
from tests.support.app import serve_app
from tests.support.fake_model import Handler, chat_completion, model_list, serve_model

__all__ = ["API_KEY", "MODEL_ANSWER", "OfflineContext", "answer_from_schema", "browser_service", "screenshot"]

API_KEY = "playground-test-key"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"

# What the fake model answers, cut to the properties of the schema it is asked for.
MODEL_ANSWER: dict[str, Any] = {
    "merchant": "ACME Market",
    "date": "2024-03-05",
    "total": 3.7,
    "currency": "USD",
    "items": [{"name": "Bread", "price": 2.5}, {"name": "Milk", "price": 1.2}],
}


def answer_from_schema(request: httpx2.Request) -> httpx2.Response:
    """The fake model's handler: ``MODEL_ANSWER`` cut to the properties of the schema in the request."""
    if request.url.path.endswith("/models"):
        return model_list()
    body = json.loads(request.content)
    schema = body["response_format"]["json_schema"]["schema"]
    answer = {key: value for key, value in MODEL_ANSWER.items() if key in schema.get("properties", {})}
    return chat_completion(json.dumps(answer), prompt_tokens=120, completion_tokens=40)


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


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot (of the whole page, or of the window) as a CI artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


@contextmanager
def browser_service(redis_url: str, model: Handler, *, model_timeout_s: float) -> Iterator[str]:
    """The service on a loopback port, API keys on, its model served by ``model``, its Redis database flushed
    before and after; yields its base URL."""
    store = redis.Redis.from_url(redis_url)
    store.flushdb()
    try:
        with serve_model(model) as model_url:
            settings = Settings(
                redis_url=redis_url,
                model_base_url=model_url,
                model_enforcement="json_schema",
                model_max_retries=0,
                model_timeout_s=model_timeout_s,
                api_keys={API_KEY: "browser"},
                jobs={"run_in_serve": False},
            )
            with serve_app(create_app(settings)) as url:
                yield url
    finally:
        store.flushdb()
        store.close()
