"""POST /v1/extract for issue 13, the model faked at the HTTP transport: the empty decision and its reason,
per-field confidence from token log-probabilities, ``min_confidence``, blank strings, and answers that used to be a 422
(an object in a list of strings on every attempt, an answer cut at the token limit)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from extractor.settings import Settings
from tests.support.app import make_settings
from tests.support.fake_model import FakeModel

RECEIPT_TEXT = "ACME Market\n2024-03-05\nBread 2.50\nTOTAL 3.70 EUR\n"
WEATHER = "What will the weather be in Paris tomorrow?"
NDA_TEXT = "This agreement between Acme Corp and Bob Smith is governed by the laws of Delaware."


@pytest.fixture
def settings() -> Settings:
    return make_settings(extraction={"logprobs": True})


async def extract(client: AsyncTestClient[Any], text: str, schema: str = "receipt", **options: Any) -> Any:
    body = {"schema": schema, "text": text, "options": {"cache": False, **options}}
    response = await client.post("/v1/extract", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def receipt_tokens(merchant_logprob: float) -> list[tuple[str, float]]:
    return [
        ('{"merchant": "', -0.01),
        ("ACME", merchant_logprob),
        (" Market", merchant_logprob),
        ('", "date": "2024-03-05", "total": ', -0.01),
        ("3.70", -0.05),
        (', "currency": null, "items": null}', -0.01),
    ]


async def test_a_value_the_document_does_not_make_a_receipt_is_empty_with_its_reason(
    client: AsyncTestClient[Any], fake_model: FakeModel
) -> None:
    fake_model.reply({"merchant": "Paris", "date": None, "total": None, "currency": None, "items": None})
    body = await extract(client, WEATHER, grounding="strict")
    assert body["status"] == "empty"
    assert body["data"] is None
    assert body["empty_reason"] == "no_presence"
    assert any(line.startswith("empty: an answer of this schema needs") for line in body["repairs"])


async def test_a_real_receipt_is_not_empty(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    fake_model.reply({"merchant": "ACME Market", "date": None, "total": 3.7, "currency": None, "items": None})
    body = await extract(client, RECEIPT_TEXT, grounding="strict")
    assert body["status"] == "ok"
    assert "empty_reason" not in body


async def test_confidence_comes_from_the_token_logprobs(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    fake_model.reply_tokens(receipt_tokens(-0.1))
    body = await extract(client, RECEIPT_TEXT)
    assert fake_model.requests[-1]["logprobs"] is True
    merchant, total = body["fields"]["/merchant"], body["fields"]["/total"]
    assert merchant["confidence"] == pytest.approx(0.9048, abs=1e-3)  # exp(-0.1), found verbatim
    assert 0 < total["confidence"] <= 1
    assert merchant["span"] == [0, 11]


async def test_min_confidence_nulls_an_unsure_value(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    fake_model.reply_tokens(receipt_tokens(-3.0))
    body = await extract(client, RECEIPT_TEXT, min_confidence=0.5)
    assert body["status"] == "ok"
    assert body["data"]["merchant"] is None
    assert body["data"]["total"] == 3.7
    assert any(line.startswith("/merchant: confidence 0.05 below min_confidence 0.5") for line in body["repairs"])


async def test_min_confidence_is_part_of_the_cache_key(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    fake_model.reply_tokens(receipt_tokens(-3.0))
    body = {"schema": "receipt", "text": RECEIPT_TEXT}
    first = (await client.post("/v1/extract", json=body)).json()
    second = (await client.post("/v1/extract", json={**body, "options": {"min_confidence": 0.5}})).json()
    assert first["data"]["merchant"] == "ACME Market"
    assert second["cached"] is False
    assert second["data"]["merchant"] is None


async def test_a_blank_string_is_not_a_value(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    answer = {"merchant": "ACME Market", "date": "2024-03-05", "total": 3.7, "currency": " ", "items": [{"name": ""}]}
    fake_model.reply(answer)
    body = await extract(client, RECEIPT_TEXT)
    assert body["data"]["currency"] is None
    assert body["data"]["items"] == [{"name": None}]
    assert "/currency: blank string ' ' is not a value, set to null" in body["repairs"]
    assert "/currency" not in body["fields"]


async def test_an_object_in_a_list_of_strings_is_nulled_after_the_attempts(
    client: AsyncTestClient[Any], fake_model: FakeModel
) -> None:
    answer = {"party": ["Acme Corp", {"name": "Bob Smith"}], "effective_date": None, "jurisdiction": "Delaware"}
    fake_model.reply(answer)
    body = await extract(client, NDA_TEXT, schema="nda", max_attempts=2)
    assert fake_model.chat_calls == 2
    assert body["status"] == "empty"  # party nulled: the nda schema's presence rule needs a party
    assert body["empty_reason"] == "no_presence"
    assert any(line.startswith("/party: still invalid after 2 attempt(s)") for line in body["repairs"])
    fake_model.reply({**answer, "party": ["Acme Corp"], "term": {"years": 2}})
    body = await extract(client, NDA_TEXT, schema="nda", max_attempts=1)
    assert body["status"] == "ok"
    assert body["data"] == {"party": ["Acme Corp"], "effective_date": None, "jurisdiction": "Delaware", "term": None}
    assert any(line.startswith("/term: still invalid after 1 attempt(s)") for line in body["repairs"])


async def test_an_answer_cut_at_the_token_limit_keeps_its_closed_fields(
    client: AsyncTestClient[Any], fake_model: FakeModel
) -> None:
    cut = '{"party": ["Acme Corp", "Bob Smith"], "jurisdiction": "Delaware", "term": "two years two years two'
    fake_model.reply(cut, finish_reason="length")
    body = await extract(client, NDA_TEXT, schema="nda")
    assert fake_model.chat_calls == 1  # a truncation is not asked again unchanged
    assert body["truncated"] is True
    assert body["data"] == {
        "party": ["Acme Corp", "Bob Smith"],
        "jurisdiction": "Delaware",
        "term": None,
        "effective_date": None,
    }
    assert "/term: cut off at the token limit, set to null" in body["repairs"]


async def test_samples_that_disagree_lower_the_confidence(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    first = {"merchant": "ACME Market", "date": "2024-03-05", "total": 3.7, "currency": None, "items": None}
    fake_model.reply(first).reply({**first, "total": 2.5})
    body = await extract(client, RECEIPT_TEXT, samples=2)
    assert fake_model.chat_calls == 2
    assert fake_model.requests[1]["temperature"] >= 0.7
    assert fake_model.requests[1]["seed"] != fake_model.requests[0]["seed"]
    assert body["attempts"] == 2
    assert body["data"] == first  # the first answer is the answer; the sample only weighs on confidence
    # No log-probabilities here: the grounding prior (verbatim 0.8, normalised 0.7) times the agreement (1, 1/2).
    assert body["fields"]["/merchant"]["confidence"] == pytest.approx(0.8)
    assert body["fields"]["/total"]["confidence"] == pytest.approx(0.7 * 0.5)
