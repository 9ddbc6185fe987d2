"""Long documents through ``/v1/extract`` and batches: split to fit, each part extracted, merged per field.

The fake model answers each part by the text it receives, so the merge of known part answers is checked whatever
order the concurrent calls arrive in. This module uses its own Redis database (4).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from extractor.extraction.budget import CHARS_PER_TOKEN
from extractor.settings import Settings
from tests.support.app import make_settings
from tests.support.batches import result_lines, wait_finished
from tests.support.fake_model import FakeModel, prompt_size
from tests.support.redis_db import flushed_db

URL = "redis://127.0.0.1:6379/4"
JOBS = {"concurrency": 4, "chunk_size": 4, "retry_base_s": 0.01, "heartbeat_s": 2, "sweep_s": 1}

SCHEMA = {
    "type": "object",
    "properties": {
        "company": {"type": "string"},
        "amounts": {"type": "array", "items": {"type": "number"}},
        "total": {"type": "number", "x-merge": "sum"},
        "last_date": {"type": "string", "x-merge": "max"},
    },
}
_FILLER = " The parties note this clause for the record and nothing else of interest happens in it."


def _paragraph(sentence: str) -> str:
    return (sentence + _FILLER * 2).strip()


PARAGRAPHS = [
    _paragraph("Seller: ACME Corporation. Invoice amount 100.50 paid on 2024-01-05."),
    _paragraph("Seller: ACME Corp Ltd. Invoice amount 20 paid on 2024-03-09."),
    _paragraph("Seller unknown ZETA. Nothing was paid in this period at all."),
]
TEXT = "\n\n".join(PARAGRAPHS)
ANSWERS: dict[str, Any] = {
    "ACME Corporation": {"company": "ACME Corporation", "amounts": [100.5], "total": 100.5, "last_date": "2024-01-05"},
    "ACME Corp Ltd": {"company": "ACME Corp Ltd", "amounts": [20], "total": 20, "last_date": "2024-03-09"},
    "ZETA": {"company": None, "amounts": [], "total": None, "last_date": None},
}


def by_document(document: str) -> str | dict[str, Any]:
    """The known answer of the part that holds a marker; a part with ``ZETA`` fails when the test says so."""
    for marker, answer in ANSWERS.items():
        if marker in document:
            return "this is not JSON" if marker == "ZETA" and FAILING["zeta"] else answer
    return {}


FAILING = {"zeta": False}


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    async with flushed_db(URL) as client:
        yield client


@pytest.fixture
def settings() -> Settings:
    # About one paragraph a part by the estimate (the fake model has no tokenizer); no overlap, to know each part.
    return make_settings(
        redis_url=URL, jobs=JOBS, extraction={"chunk_tokens": 100, "chunk_overlap_chars": 0, "max_attempts": 1}
    )


@pytest.fixture(autouse=True)
def _answers(fake_model: FakeModel) -> None:
    FAILING["zeta"] = False
    fake_model.reply_by_document(by_document)
    return


async def _register(client: AsyncTestClient[Any]) -> None:
    response = await client.put("/v1/schemas/ledger", json={"json_schema": SCHEMA})
    assert response.status_code in (200, 201), response.text


async def _extract(client: AsyncTestClient[Any], text: str = TEXT, **options: Any) -> Any:
    return await client.post("/v1/extract", json={"schema": "ledger", "text": text, "options": options})


async def test_the_parts_merge_by_rule_with_conflicts_and_spans_in_the_original(
    client: AsyncTestClient[Any], fake_model: FakeModel
) -> None:
    await _register(client)
    response = await _extract(client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["parts"] == 3
    assert fake_model.chat_calls == 3
    assert body["data"] == {
        "company": "ACME Corporation",
        "amounts": [100.5, 20],
        "total": 120.5,
        "last_date": "2024-03-09",
    }
    assert body.get("complete", True) is True
    assert "failed_parts" not in body
    conflict = body["conflicts"]["/company"]
    assert [(c["value"], c["part"]) for c in conflict] == [("ACME Corporation", 0), ("ACME Corp Ltd", 1)]
    for candidate in conflict:
        assert TEXT[candidate["span"][0] : candidate["span"][1]] == candidate["value"]
    for pointer in ("/company", "/last_date"):
        start, end = body["fields"][pointer]["span"]
        assert TEXT[start:end] == body["data"][pointer[1:]]
    start, end = body["fields"]["/amounts/1"]["span"]
    assert TEXT[start:end] == "20"
    assert start > len(PARAGRAPHS[0])
    assert body["attempts"] == 3
    assert body["usage"]["prompt_tokens"] == sum(prompt_size(request) for request in fake_model.requests)


async def test_a_complete_result_is_cached_whole(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    await _register(client)
    first = (await _extract(client)).json()
    again = (await _extract(client)).json()
    assert again["cached"] is True
    assert fake_model.chat_calls == 3
    assert {k: again[k] for k in ("data", "fields", "parts", "conflicts")} == {
        k: first[k] for k in ("data", "fields", "parts", "conflicts")
    }


async def test_a_failed_part_gives_an_incomplete_result_that_is_not_cached(
    client: AsyncTestClient[Any], fake_model: FakeModel
) -> None:
    await _register(client)
    FAILING["zeta"] = True
    body = (await _extract(client)).json()
    assert body["status"] == "ok"
    assert body["complete"] is False
    assert body["data"]["company"] == "ACME Corporation"
    [failed] = body["failed_parts"]
    assert failed["index"] == 2
    assert failed["problem"]["type"] == "extraction-failed"
    assert "ZETA" in TEXT[failed["start"] : failed["end"]]
    assert failed["end"] == len(TEXT)
    await _extract(client)
    assert fake_model.chat_calls == 6  # not answered from the cache


async def test_require_complete_makes_a_failed_part_a_422(client: AsyncTestClient[Any]) -> None:
    await _register(client)
    FAILING["zeta"] = True
    response = await _extract(client, require_complete=True)
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "extraction-incomplete"
    assert "1 of the document's 3 parts failed" in problem["detail"]
    assert [part["index"] for part in problem["failed_parts"]] == [2]


async def test_a_short_document_is_one_call_and_its_answer_reads_as_before(
    client: AsyncTestClient[Any], fake_model: FakeModel
) -> None:
    await _register(client)
    body = (await _extract(client, text=PARAGRAPHS[0])).json()
    assert fake_model.chat_calls == 1
    assert not {"parts", "complete", "failed_parts", "conflicts"} & set(body)
    assert body["data"]["company"] == "ACME Corporation"


async def test_a_long_document_in_a_batch_is_one_merged_result_line(client: AsyncTestClient[Any]) -> None:
    await _register(client)
    documents = [{"id": "long", "text": TEXT}, {"id": "short", "text": PARAGRAPHS[1]}]
    response = await client.post("/v1/batches", json={"schema": "ledger", "documents": documents})
    assert response.status_code == 202, response.text
    batch_id = response.json()["batch_id"]
    await wait_finished(client, batch_id)
    lines = await result_lines(client, batch_id)
    assert [(line["id"], line.get("parts", 1)) for line in lines] == [("long", 3), ("short", 1)]
    assert lines[0]["data"]["total"] == 120.5
    assert lines[0]["conflicts"]["/company"][0]["value"] == "ACME Corporation"


WINDOW = 600


@pytest.mark.parametrize(
    "settings",
    [
        make_settings(
            redis_url=URL, model_context_tokens=WINDOW, extraction={"max_tokens": 64, "chunk_overlap_chars": 0}
        )
    ],
)
async def test_a_prompt_over_a_small_window_is_split_never_sent_whole_nor_re_asked_past_it(
    client: AsyncTestClient[Any], fake_model: FakeModel
) -> None:
    await _register(client)
    seen: set[str] = set()

    def wrong_first(document: str) -> str | dict[str, Any]:
        """Each part's first answer is not JSON: every part is re-asked, with the refused answer in its prompt."""
        if document in seen:
            return by_document(document)
        seen.add(document)
        return "not JSON " * 20

    fake_model.steps.clear()
    fake_model.reply_by_document(wrong_first)
    long_text = "\n\n".join([PARAGRAPHS[0], *(PARAGRAPHS[2:] * 6), PARAGRAPHS[1]])
    response = await _extract(client, text=long_text)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["parts"] > 1
    assert body["attempts"] == 2 * body["parts"]
    for request in fake_model.requests:
        prompt = sum(math.ceil(len(m["content"]) / CHARS_PER_TOKEN) + 8 for m in request["messages"])
        assert prompt + request["max_tokens"] <= WINDOW, json.dumps(request)[:200]
    assert {len(request["messages"]) for request in fake_model.requests} == {2, 4}  # first asks and re-asks


@pytest.mark.parametrize("settings", [make_settings(redis_url=URL, model_context_tokens=300)])
async def test_a_schema_whose_prompt_leaves_no_room_is_a_422_that_says_so(client: AsyncTestClient[Any]) -> None:
    await _register(client)
    response = await _extract(client)
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "schema-too-large"
    assert "300-token window" in problem["detail"]
    assert "EXTRACTOR_EXTRACTION__MAX_TOKENS" in problem["detail"]


@pytest.mark.parametrize("settings", [make_settings(redis_url=URL, extraction={"max_tokens": 128})])
async def test_a_window_the_endpoint_names_in_a_refusal_is_learned_and_the_document_split_for_it(
    client: AsyncTestClient[Any], fake_model: FakeModel
) -> None:
    """An endpoint that reports no window (taken as 8,192 tokens) but holds 900: its refusal of the first, whole
    prompt names the window, and the same request is planned again within it, not answered 502."""
    await _register(client)
    fake_model.context_window = 900
    long_text = "\n\n".join([PARAGRAPHS[0], *(PARAGRAPHS[2:] * 40), PARAGRAPHS[1]])  # about 2,500 tokens
    response = await _extract(client, text=long_text)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["parts"] > 2
    assert body["data"]["company"] == "ACME Corporation"
    assert body["data"]["total"] == 120.5  # both paragraphs' parts answered and merged
    assert fake_model.refused == 1  # the first prompt only
    for request in fake_model.requests:
        assert prompt_size(request) + request["max_tokens"] <= 900
    again = await _extract(client, text=long_text + " Once more.")
    assert again.status_code == 200, again.text
    assert fake_model.refused == 1  # the window is known now: nothing more is refused


@pytest.mark.parametrize(
    "settings", [make_settings(redis_url=URL, model_context_tokens=900, extraction={"max_tokens": 128})]
)
async def test_a_refusal_naming_no_smaller_window_is_a_502_that_says_what_to_set(
    client: AsyncTestClient[Any], fake_model: FakeModel
) -> None:
    """The window was set to 900 and the endpoint refuses a prompt planned within it, naming 900 (its tokenizer
    counts more than ours): planning again would not help, so the answer says which setting to lower."""
    await _register(client)
    fake_model.steps.clear()
    fake_model.too_long(900)
    response = await _extract(client)
    assert response.status_code == 502, response.text
    problem = response.json()
    assert problem["type"] == "context-overflow"
    assert problem["window"] == 900
    assert "EXTRACTOR_MODEL_CONTEXT_TOKENS=900 (or less)" in problem["detail"]
    assert fake_model.refused == 1  # not sent again


@pytest.mark.parametrize("settings", [make_settings(redis_url=URL, extraction={"max_tokens": 128})])
async def test_a_refusal_after_another_request_learned_the_window_still_plans_again(
    client: AsyncTestClient[Any], fake_model: FakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests in flight together: one planned with the window taken as 8,192, and before its call another learned
    the endpoint's 900. The first is refused too, naming 900, which is no news to the planner by then; the request
    plans again all the same (its own plan was for 8,192), rather than answering 502."""
    await _register(client)
    fake_model.context_window = 900
    planner = client.app.state.runtime.extraction._planner
    plan = planner.plan

    async def plan_then_another_learns(*args: Any) -> Any:
        planned = await plan(*args)
        planner.narrow(900)  # what the concurrent request did meanwhile
        return planned

    monkeypatch.setattr(planner, "plan", plan_then_another_learns)
    long_text = "\n\n".join([PARAGRAPHS[0], *(PARAGRAPHS[2:] * 30), PARAGRAPHS[1]])
    response = await _extract(client, text=long_text)
    assert response.status_code == 200, response.text
    assert response.json()["parts"] > 2
    assert fake_model.refused == 1
