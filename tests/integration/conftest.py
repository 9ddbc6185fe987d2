"""Integration fixtures: the real Redis at 127.0.0.1:6379 (db 15, flushed per test) and a model faked at the
HTTP transport (``tests/support/fake_model.py``: a real loopback server) with a script of answers and faults."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from extractor.settings import Settings
from tests.support.app import app_client, make_settings
from tests.support.fake_model import FakeModel
from tests.support.processes import fake_openai
from tests.support.redis_db import INTEGRATION_URL, flushed_db


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    async with flushed_db(INTEGRATION_URL) as client:
        yield client


@pytest.fixture
def fake_model() -> FakeModel:
    return FakeModel()


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
async def client(redis: Redis, fake_model: FakeModel, settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with app_client(settings, fake_model.handler) as test_client:
        yield test_client


@pytest.fixture
def fake_server() -> Iterator[str]:
    """``bench/fake_openai.py`` in a subprocess, answering each call after 100 ms; yields its base URL."""
    with fake_openai(100) as url:
        yield url
