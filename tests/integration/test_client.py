"""``extractor.client`` against the real app (Redis database 9, the model scripted at its transport): the asyncio
client in-process, the blocking one over a loopback socket with the batch worker running."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from extractor.app import create_app
from extractor.client import (
    AsyncClient,
    Client,
    ExtractionFailedError,
    InvalidRequestError,
    NotFoundError,
    SchemaDefinition,
    UnauthorizedError,
)
from extractor.settings import Settings
from extractor.vocabulary import BatchStatus, ItemStatus
from tests.support.app import app_client, make_settings, serve_app
from tests.support.batches import GOOD
from tests.support.fake_model import FakeModel, serve_model
from tests.support.redis_db import flushed_db

REDIS_URL = "redis://127.0.0.1:6379/9"
CITY = SchemaDefinition(json_schema={"type": "object", "properties": {"city": {"type": ["string", "null"]}}})
JOBS = {"concurrency": 4, "chunk_size": 2, "heartbeat_s": 2, "sweep_s": 1}


def _settings(**overrides: Any) -> Settings:
    return make_settings(redis_url=REDIS_URL, **overrides)


@pytest.fixture
async def clean_db() -> AsyncIterator[None]:
    async with flushed_db(REDIS_URL):
        yield


@pytest.fixture
async def service(clean_db: None) -> AsyncIterator[tuple[AsyncClient, FakeModel]]:
    model = FakeModel().reply({"city": "Paris"})
    async with app_client(_settings(), model.handler) as http:
        yield AsyncClient(http_client=http), model


async def test_schemas_and_extraction_as_typed_answers(service: tuple[AsyncClient, FakeModel]) -> None:
    client, _ = service
    first = await client.register_schema("city", CITY)
    again = await client.register_schema("city", CITY)
    assert (first.ref, again.ref) == ("city@1", "city@1")  # equal content registers nothing
    assert "city@1" in [summary.ref for summary in await client.list_schemas()]

    result = await client.extract("city", "Paris is lovely", options={"grounding": "strict"})
    assert result.status == "ok"
    assert result.data == {"city": "Paris"}
    assert result.fields["/city"].span == (0, 5)

    retired = await client.retire_schema("city")
    assert retired.retired
    assert (await client.get_schema("city")).retired
    assert (await client.get_schema_version("city", 1)).json_schema == CITY.json_schema
    with pytest.raises(NotFoundError) as caught:
        await client.extract("city", "Paris")
    assert caught.value.type == "schema-not-found"


async def test_problems_arrive_as_typed_errors(service: tuple[AsyncClient, FakeModel]) -> None:
    client, model = service
    with pytest.raises(InvalidRequestError) as conflict:
        await client.register_schema("receipt", CITY)
    assert conflict.value.status == 409
    model.steps.clear()
    model.reply("this is not JSON at all")
    with pytest.raises(ExtractionFailedError) as failed:
        await client.extract("receipt", "ACME", options={"max_attempts": 2})
    assert failed.value.problem.model_extra is not None
    assert failed.value.problem.model_extra["attempts"] == 2
    assert (await client.health()).status == "ok"
    assert (await client.ready()).ready


@pytest.fixture
def batch_service(clean_db: None) -> Iterator[str]:
    model = FakeModel().reply(GOOD)
    with serve_model(model.handler) as model_url:
        app = create_app(_settings(model_base_url=model_url, jobs=JOBS, api_keys="acme:key-one"))
        with serve_app(app) as url:
            yield url


def test_a_batch_through_the_blocking_client(batch_service: str) -> None:
    with Client(batch_service, "key-one") as client:
        documents = [(f"r-{n}", f"ACME Market receipt {n}, TOTAL 3.70 EUR") for n in range(5)]
        batch = client.create_batch("receipt", documents, idempotency_key="five")
        assert client.create_batch("receipt", documents, idempotency_key="five").batch_id == batch.batch_id
        events = list(client.batch_events(batch.batch_id))
        assert events[-1].final
        assert events[-1].status is BatchStatus.FINISHED
        results = list(client.batch_results(batch.batch_id))
        assert [r.id for r in results] == [doc_id for doc_id, _ in documents]
        assert {r.status for r in results} == {ItemStatus.OK}
        assert all(r.result is not None and r.result.schema_ref == "receipt@1" for r in results)
        assert client.get_batch(batch.batch_id).done == 5

        ndjson = client.create_batch_ndjson("receipt", '{"id": "x", "text": "ACME Market TOTAL 3.70 EUR"}\n')
        assert [r.id for r in client.batch_results(ndjson.batch_id, wait=True)] == ["x"]
        assert client.cancel_batch(ndjson.batch_id).batch_id == ndjson.batch_id


def test_a_wrong_key_is_unauthorized(batch_service: str) -> None:
    with Client(batch_service, "key-two") as client, pytest.raises(UnauthorizedError):
        client.list_schemas()
    with Client(batch_service, "key-one") as client, pytest.raises(NotFoundError):
        client.get_batch("no-such-batch")


async def test_the_async_client_over_a_socket(batch_service: str) -> None:
    async with AsyncClient(batch_service, "key-one") as client:
        batch = await client.create_batch("receipt", [("a", "ACME Market TOTAL 3.70 EUR")])
        events = [event async for event in client.batch_events(batch.batch_id)]
        assert events[-1].final
        assert [r.id async for r in client.batch_results(batch.batch_id)] == ["a"]
