"""API keys: each maps to a tenant; one tenant's schemas and cache entries are invisible to another."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from extractor.settings import hash_api_key
from tests.support.app import make_settings
from tests.support.fake_model import FakeModel

KEYS = f"alpha:key-a,beta:{hash_api_key('key-b')}"
SCHEMA = {"json_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("settings", [make_settings(api_keys=KEYS)])
async def test_keys_required_and_tenants_isolated(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    assert (await client.get("/v1/schemas")).status_code == 401
    assert (await client.get("/v1/schemas", headers=auth("wrong"))).status_code == 401
    created = await client.put("/v1/schemas/city", json=SCHEMA, headers=auth("key-a"))
    assert created.status_code == 201
    assert (await client.get("/v1/schemas/city", headers=auth("key-a"))).status_code == 200
    assert (await client.get("/v1/schemas/city", headers={"X-API-Key": "key-b"})).status_code == 404
    names_b = {s["name"] for s in (await client.get("/v1/schemas", headers=auth("key-b"))).json()}
    assert "city" not in names_b
    assert "receipt" in names_b, "bundled schemas are visible to every tenant"

    fake_model.reply({"merchant": "ACME", "date": None, "total": None, "currency": None, "items": None})
    body = {"schema": "receipt", "text": "ACME"}
    assert (await client.post("/v1/extract", json=body, headers=auth("key-a"))).json()["cached"] is False
    assert (await client.post("/v1/extract", json=body, headers=auth("key-a"))).json()["cached"] is True
    assert (await client.post("/v1/extract", json=body, headers=auth("key-b"))).json()["cached"] is False
    assert fake_model.chat_calls == 2
