"""``extract_stream`` of ``extractor.client``: typed events, the result last, an ``error`` event raised as the JSON
answer's problem would be; the asyncio client in-process, the blocking one over a loopback socket (Redis db 3)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from click.testing import CliRunner

from extractor.answers import AttemptEvent, PartialEvent
from extractor.app import create_app
from extractor.cli.extract import extract
from extractor.client import AsyncClient, Client, ExtractionFailedError, ExtractorAPIError, NotFoundError
from extractor.extraction.result import ExtractionResult
from extractor.vocabulary import FieldState
from tests.support.app import app_client, make_settings, serve_app
from tests.support.fake_model import FakeModel, serve_model
from tests.support.redis_db import STREAMING_URL, flushed_db

TEXT = "ACME Market\nTOTAL 3.70 EUR"
ANSWER: dict[str, Any] = {"merchant": "ACME Market", "date": None, "total": 3.7, "currency": "EUR", "items": []}


@pytest.fixture
async def clean_db() -> AsyncIterator[None]:
    async with flushed_db(STREAMING_URL):
        yield


async def test_async_client_yields_typed_events_then_the_result(clean_db: None) -> None:
    model = FakeModel().reply({"merchant": ["not", "a", "string"]}).reply(ANSWER)
    async with app_client(make_settings(redis_url=STREAMING_URL), model.handler) as http:
        client = AsyncClient(http_client=http)
        events = [event async for event in client.extract_stream("receipt", TEXT, options={"cache": False})]
        plain = await client.extract("receipt", TEXT, options={"cache": False})
    assert isinstance(events[-1], ExtractionResult)
    assert events[-1].data == plain.data == ANSWER
    attempts = [e for e in events if isinstance(e, AttemptEvent)]
    assert [a.attempt for a in attempts] == [2]
    partials = [e for e in events if isinstance(e, PartialEvent)]
    assert partials[-1].data == ANSWER
    assert partials[-1].fields["/total"] == FieldState.COMPLETE
    assert {p.attempt for p in partials} == {1, 2}


async def test_async_client_raises_the_typed_error_of_an_error_event(clean_db: None) -> None:
    model = FakeModel().reply("no JSON here")
    async with app_client(make_settings(redis_url=STREAMING_URL), model.handler) as http:
        client = AsyncClient(http_client=http)

        async def read(schema: str, **options: Any) -> tuple[list[Any], ExtractorAPIError | None]:
            seen: list[Any] = []
            try:
                async for event in client.extract_stream(schema, TEXT, options=options):
                    seen.append(event)  # noqa: PERF401  # the events before the error are what is checked
            except ExtractorAPIError as exc:
                return seen, exc
            return seen, None

        failed_events, failed = await read("receipt", max_attempts=2)
        missing_events, missing = await read("no-such-schema")
    assert isinstance(failed, ExtractionFailedError)
    assert failed.status == 422
    assert failed.problem.model_extra is not None
    assert failed.problem.model_extra["attempts"] == 2
    assert [type(e) for e in failed_events] == [AttemptEvent]
    assert isinstance(missing, NotFoundError)
    assert missing_events == []


async def test_blocking_client_streams_over_a_socket(clean_db: None) -> None:
    model = FakeModel().stream(ANSWER, piece_chars=3)
    with serve_model(model.handler) as model_url:
        app = create_app(make_settings(redis_url=STREAMING_URL, model_base_url=model_url))
        with serve_app(app) as url:

            def run() -> list[Any]:
                with Client(url) as client:
                    return list(client.extract_stream("receipt", TEXT))

            events = await asyncio.to_thread(run)
    assert isinstance(events[-1], ExtractionResult)
    assert events[-1].data == ANSWER
    assert len([e for e in events if isinstance(e, PartialEvent)]) > 3


async def test_the_cli_shows_fields_live_then_prints_the_result(clean_db: None) -> None:
    model = FakeModel().stream(ANSWER, piece_chars=3)
    with serve_model(model.handler) as model_url:
        app = create_app(make_settings(redis_url=STREAMING_URL, model_base_url=model_url))
        with serve_app(app) as url:
            args = ["--schema", "receipt", "--stream", "--url", url, "-"]
            result = await asyncio.to_thread(CliRunner().invoke, extract, args, input=TEXT)
            missing = ["--schema", "nope", "--stream", "--url", url, "-"]
            failed = await asyncio.to_thread(CliRunner().invoke, extract, missing, input=TEXT)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data"] == ANSWER
    assert "/merchant" in result.stderr
    assert "complete" in result.stderr
    assert failed.exit_code == 1
    problem = next(
        line for line in failed.stderr.splitlines() if line.startswith('{"type"')
    )  # after the service's log lines
    assert json.loads(problem)["status"] == 404  # the error event, as the JSON answer's problem
