"""The service on the real bundled model: invariants a user relies on (valid, grounded, honest status), not values."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from extractor.registry.compiled import nullable
from extractor.registry.validator import validator_for

pytestmark = pytest.mark.e2e

RECEIPT = "ACME Market\n2024-03-05\nBread 2.50\nMilk 1.20\nTOTAL 3.70 EUR\n"
CONTACT = "Hi, I'm Jane Doe from Initech. Reach me at jane.doe@initech.com or +1 555 0100."
CHAT = "lol ok see you at 8 then, bring snacks"


async def _schema(client: AsyncTestClient[Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = (await client.get(f"/v1/schemas/{name}")).json()["json_schema"]
    return schema


def _assert_honest(body: dict[str, Any], text: str, schema: dict[str, Any]) -> None:
    """Valid against the schema, every returned value found in the text, status consistent with data."""
    assert body["status"] in {"ok", "empty"}
    if body["status"] == "empty":
        assert body["data"] is None
        return
    assert validator_for(nullable(schema)).is_valid(body["data"])
    assert body["fields"], "an ok result has at least one grounded value"
    for path, info in body["fields"].items():
        assert info["grounded"] is not False, path
        if info["span"] is not None:
            start, end = info["span"]
            assert 0 <= start < end <= len(text)


async def _extract(client: AsyncTestClient[Any], schema: str, text: str) -> dict[str, Any]:
    response = await client.post("/v1/extract", json={"schema": schema, "text": text, "options": {"cache": False}})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_receipt_gives_a_valid_grounded_result(e2e_client: AsyncTestClient[Any]) -> None:
    body = await _extract(e2e_client, "receipt", RECEIPT)
    assert body["enforcement"] == "json_object_schema", "llama.cpp enforces through a grammar; json_schema is a 500"
    assert body["status"] == "ok"
    _assert_honest(body, RECEIPT, await _schema(e2e_client, "receipt"))


async def test_unrelated_chat_is_empty_or_fully_grounded(e2e_client: AsyncTestClient[Any]) -> None:
    for schema in ("receipt", "invoice"):
        body = await _extract(e2e_client, schema, CHAT)
        _assert_honest(body, CHAT, await _schema(e2e_client, schema))


async def test_two_schemas(e2e_client: AsyncTestClient[Any]) -> None:
    receipt = await _extract(e2e_client, "receipt", RECEIPT)
    contact = await _extract(e2e_client, "contact", CONTACT)
    assert receipt["schema"] == "receipt@1"
    assert contact["schema"] == "contact@1"
    _assert_honest(contact, CONTACT, await _schema(e2e_client, "contact"))


async def test_four_concurrent_requests_answer_as_each_would_alone(e2e_client: AsyncTestClient[Any]) -> None:
    """Concurrency changes no answer: four requests at once get what each gets alone (temperature 0, seeded, no
    cache). Each answer is a grounded 200, or a clean 422 when the 135M model found no valid output: which one a
    document gets depends on the model's build, not on the service."""
    texts = [RECEIPT, CONTACT, CHAT, RECEIPT.replace("ACME", "Globex")]
    schemas = ["receipt", "contact", "receipt", "receipt"]
    bodies = [{"schema": s, "text": t, "options": {"cache": False}} for s, t in zip(schemas, texts, strict=True)]
    together = await asyncio.gather(*(e2e_client.post("/v1/extract", json=body) for body in bodies))
    alone = [await e2e_client.post("/v1/extract", json=body) for body in bodies]
    assert [r.status_code for r in together] == [r.status_code for r in alone]
    assert [r.status_code for r in together][:3] == [200, 200, 200], [r.text for r in together]
    for concurrent, single, text, schema in zip(together, alone, texts, schemas, strict=True):
        body = concurrent.json()
        if concurrent.status_code == 422:
            assert body["type"] == "extraction-failed"
            assert body["attempts"] == single.json()["attempts"] == 3
            continue
        assert concurrent.status_code == 200
        assert (body["status"], body["data"]) == (single.json()["status"], single.json()["data"])
        _assert_honest(body, text, await _schema(e2e_client, schema))


async def test_repeat_is_cached(e2e_client: AsyncTestClient[Any]) -> None:
    body = {"schema": "contact", "text": CONTACT}
    first = (await e2e_client.post("/v1/extract", json=body)).json()
    second = (await e2e_client.post("/v1/extract", json=body)).json()
    assert second["cached"] is True
    assert second["data"] == first["data"]
