"""Integration fixtures: the real Redis at 127.0.0.1:6379 (db 15, flushed per test) and a model faked at the
HTTP transport (``tests/model_server.py``: a real loopback server) with a script of answers and faults."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from extractor.app import create_app
from extractor.settings import Settings
from tests.model_server import Handler, chat_completion, model_list, serve_model
from tests.redis_db import flushed_db

REDIS_URL = "redis://127.0.0.1:6379/15"


@dataclass
class FakeModel:
    """A scripted OpenAI-compatible endpoint. Each chat request takes the next scripted step; the last repeats."""

    steps: list[tuple[Any, ...]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def reply(self, content: str | dict[str, Any], *, finish_reason: str = "stop", tokens: int = 10) -> FakeModel:
        text = content if isinstance(content, str) else json.dumps(content)
        self.steps.append(("reply", text, finish_reason, tokens))
        return self

    def fail(self, status: int, headers: dict[str, str] | None = None) -> FakeModel:
        self.steps.append(("fail", status, headers or {}))
        return self

    def time_out(self) -> FakeModel:
        self.steps.append(("timeout",))
        return self

    @property
    def chat_calls(self) -> int:
        return len(self.requests)

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/models"):
            return model_list()
        self.requests.append(json.loads(request.content))
        step: tuple[Any, ...] = (
            self.steps[min(len(self.requests), len(self.steps)) - 1] if self.steps else ("reply", "{}", "stop", 1)
        )
        kind = step[0]
        if kind == "timeout":
            raise httpx2.ReadTimeout("scripted timeout", request=request)
        if kind == "raw":
            return httpx2.Response(200, content=step[2], headers={"content-type": step[1]})
        if kind == "fail":
            body = {"error": {"message": f"scripted {step[1]}", "type": "server_error"}}
            return httpx2.Response(step[1], json=body, headers=step[2])
        _, text, finish_reason, tokens = step
        return chat_completion(text, finish_reason=finish_reason, completion_tokens=tokens)


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    async with flushed_db(REDIS_URL) as client:
        yield client


@pytest.fixture
def fake_model() -> FakeModel:
    return FakeModel()


def make_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "redis_url": REDIS_URL,
        "model_base_url": "http://model.test/v1",
        "model_enforcement": "json_schema",
        "model_max_retries": 0,
        "model_timeout_s": 2.0,
    }
    return Settings(**(base | overrides))


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
async def client(redis: Redis, fake_model: FakeModel, settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with app_client(settings, fake_model.handler) as test_client:
        yield test_client


@asynccontextmanager
async def app_client(settings: Settings, handler: Handler) -> AsyncIterator[AsyncTestClient[Any]]:
    """The app under test, its model endpoint served by ``handler``."""
    with serve_model(handler) as url:
        app = create_app(settings.model_copy(update={"model_base_url": url}))
        async with AsyncTestClient(app) as test_client:
            yield test_client
