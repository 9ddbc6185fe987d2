"""With Redis away, a schema version already seen is served from memory and extraction keeps answering: the cache
read counts as a miss and the cache write is skipped (issue 14, "degrade, don't die")."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.exceptions import ConnectionError as RedisConnectionError

from extractor.runtime import Runtime
from tests.support.fake_model import FakeModel

TEXT = "ACME Market\n2024-03-05\nTOTAL 3.70 EUR\n"
ANSWER = {"merchant": "ACME Market", "date": "2024-03-05", "total": 3.7, "currency": "EUR", "items": None}


def _redis_goes_away(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command of the service's Redis client fails from now on, as with a stopped server."""

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(runtime.redis.connection_pool, "get_connection", refuse)


@pytest.mark.parametrize("schema", ["receipt", "receipt@1"])
async def test_a_schema_seen_before_is_served_from_memory_and_extraction_answers(
    client: AsyncTestClient[Any], fake_model: FakeModel, monkeypatch: pytest.MonkeyPatch, schema: str
) -> None:
    fake_model.reply(ANSWER).reply(ANSWER)
    body = {"schema": schema, "text": TEXT, "options": {"cache": True}}
    assert (await client.post("/v1/extract", json=body)).status_code == 200  # seen once, while Redis answers
    _redis_goes_away(client.app.state.runtime, monkeypatch)

    response = await client.post("/v1/extract", json={**body, "text": TEXT + "\n"})

    assert response.status_code == 200, response.text
    assert response.json()["data"]["merchant"] == "ACME Market"
    assert response.json()["cached"] is False
    assert len(fake_model.requests) == 2


async def test_a_schema_never_seen_while_redis_is_away_is_a_503_with_a_sentence(
    client: AsyncTestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _redis_goes_away(client.app.state.runtime, monkeypatch)
    response = await client.post("/v1/extract", json={"schema": "invoice", "text": TEXT})
    assert response.status_code == 503
    problem = response.json()
    assert problem["type"] == "store-unavailable"
    assert "Redis" in problem["detail"]
    assert "6379" not in problem["detail"], "no host:port in what the caller sees"
    assert response.headers["retry-after"]
