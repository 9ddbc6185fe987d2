"""Schema registry over HTTP: versioning, idempotent re-registration, refusals, retirement, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from extractor.settings import Settings
from tests.support.app import app_client
from tests.support.fake_model import FakeModel
from tests.support.redis_db import flushed_db

V1 = {"json_schema": {"type": "object", "properties": {"name": {"type": "string"}}}, "description": "a person"}
V2 = {"json_schema": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}}


async def test_versions_and_idempotent_reregistration(client: AsyncTestClient[Any]) -> None:
    first = await client.put("/v1/schemas/person", json=V1)
    assert first.status_code == 201
    assert first.json()["version"] == 1
    assert first.json()["hash"].startswith("sha256:")
    same = await client.put("/v1/schemas/person", json=V1)
    assert same.status_code == 200
    assert same.json()["version"] == 1
    assert same.json()["hash"] == first.json()["hash"]
    second = await client.put("/v1/schemas/person", json=V2)
    assert second.status_code == 201
    assert second.json()["version"] == 2
    latest = (await client.get("/v1/schemas/person")).json()
    assert latest["version"] == 2
    one = (await client.get("/v1/schemas/person/versions/1")).json()
    assert one["json_schema"] == V1["json_schema"]
    assert one["description"] == "a person"
    assert (await client.get("/v1/schemas/person/versions/3")).status_code == 404
    listed = {s["name"]: s["version"] for s in (await client.get("/v1/schemas")).json()}
    assert listed["person"] == 2
    assert {"receipt", "invoice", "contact", "nda", "job_posting"} <= listed.keys()


async def test_extract_with_pinned_version(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    await client.put("/v1/schemas/person", json=V1)
    await client.put("/v1/schemas/person", json=V2)
    fake_model.reply({"name": "Ada", "age": "36"})
    pinned = (await client.post("/v1/extract", json={"schema": "person@1", "text": "Ada, 36"})).json()
    assert pinned["schema"] == "person@1"
    latest = (await client.post("/v1/extract", json={"schema": "person", "text": "Ada, 36"})).json()
    assert latest["schema"] == "person@2"
    assert latest["data"]["age"] == 36


async def test_refusals_are_4xx_problems_that_say_where(client: AsyncTestClient[Any]) -> None:
    cases = {
        "bad-keyword": (
            {"json_schema": {"type": "object", "properties": {"a": {"type": "strin"}}}},
            422,
            "/properties",
        ),
        "remote-ref": (
            {"json_schema": {"type": "object", "properties": {"a": {"$ref": "https://x.test/s.json"}}}},
            422,
            "remote",
        ),
        "not-object": ({"json_schema": {"type": "string"}}, 422, "object"),
        "no-schema": ({"description": "x"}, 400, "json_schema"),
    }
    for name, (body, status, needle) in cases.items():
        response = await client.put(f"/v1/schemas/{name}", json=body)
        assert response.status_code == status, (name, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert needle in response.text, (name, response.text)
    bad_name = await client.put("/v1/schemas/has%20space", json=V1)
    assert bad_name.status_code == 400
    deep: dict[str, Any] = {"type": "object"}
    for _ in range(40):
        deep = {"type": "object", "properties": {"x": deep}}
    too_deep = await client.put("/v1/schemas/deep", json={"json_schema": deep})
    assert too_deep.status_code == 422
    assert "deeper" in too_deep.json()["detail"]
    huge = {"type": "object", "properties": {f"f{i}": {"type": "string", "description": "x" * 200} for i in range(400)}}
    assert (await client.put("/v1/schemas/huge", json={"json_schema": huge})).status_code == 413


async def test_retire_keeps_versions_readable(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    await client.put("/v1/schemas/person", json=V1)
    retired = await client.delete("/v1/schemas/person")
    assert retired.status_code == 200
    assert retired.json()["retired"] is True
    assert (await client.post("/v1/extract", json={"schema": "person", "text": "Ada"})).status_code == 404
    assert (await client.get("/v1/schemas/person/versions/1")).status_code == 200
    assert (await client.delete("/v1/schemas/receipt")).status_code == 404
    shadow = await client.put("/v1/schemas/receipt", json=V1)
    assert shadow.status_code == 409
    assert "bundled" in shadow.json()["detail"]
    revived = await client.put("/v1/schemas/person", json=V1)
    assert revived.status_code == 200
    assert revived.json()["version"] == 1
    assert (await client.get("/v1/schemas/person")).json()["retired"] is False


async def test_schemas_survive_a_restart(
    client: AsyncTestClient[Any], settings: Settings, fake_model: FakeModel
) -> None:
    await client.put("/v1/schemas/person", json=V1)
    async with app_client(settings, fake_model.handler) as restarted:
        assert (await restarted.get("/v1/schemas/person")).json()["version"] == 1
        assert (await restarted.get("/v1/schemas/receipt")).json()["version"] == 1, "bundled: no new version"


async def test_latest_pointer_is_shared_across_processes_within_its_ttl(redis: Any) -> None:
    from extractor.registry.schema import SchemaDefinition
    from extractor.registry.service import SchemaRegistry
    from extractor.settings import RegistrySettings

    here = SchemaRegistry(redis, RegistrySettings(latest_ttl_s=0.3))
    elsewhere = SchemaRegistry(redis, RegistrySettings(latest_ttl_s=0.3))
    await here.register("t", "person", SchemaDefinition(**V1))
    assert (await here.resolve("t", "person")).version.version == 1
    await elsewhere.register("t", "person", SchemaDefinition(**V2))
    assert (await elsewhere.resolve("t", "person")).version.version == 2, "own registration: at once"
    assert (await here.resolve("t", "person")).version.version == 1, "another process's: after the TTL"
    assert (await here.resolve("t", "person@2")).version.version == 2, "a pinned version is always exact"
    await asyncio.sleep(0.35)
    assert (await here.resolve("t", "person")).version.version == 2


async def test_bundled_schemas_come_back_when_redis_loses_its_data(client: AsyncTestClient[Any], redis: Any) -> None:
    """A Redis restarted without persistence (or an empty replica after a failover) has no schemas at all; the
    bundled ones ship with the code, so the first lookup registers them again. A tenant's own schemas are gone."""
    await client.put("/v1/schemas/person", json=V1)
    await redis.flushdb()
    receipt = await client.get("/v1/schemas/receipt")
    assert receipt.status_code == 200, receipt.text
    assert receipt.json()["version"] == 1
    assert receipt.json()["bundled"] is True
    names = {s["name"] for s in (await client.get("/v1/schemas")).json()}
    assert {"receipt", "invoice", "contact", "nda", "job_posting"} <= names
    assert "person" not in names
    assert (await client.get("/v1/schemas/person")).status_code == 404
    taken = await client.put("/v1/schemas/invoice", json=V1)
    assert taken.status_code == 409, "bundled names stay reserved"


async def test_a_lookup_begun_before_a_retirement_neither_answers_nor_caches_for_later_callers(redis: Any) -> None:
    """Concurrent lookups of one name share one Redis read, but not across this process's own retirement: a
    resolve that starts after `retire` returned sees the schema retired at once."""
    from extractor.errors import SchemaNotFoundError
    from extractor.registry.schema import SchemaDefinition
    from extractor.registry.service import SchemaRegistry
    from extractor.settings import RegistrySettings

    registry = SchemaRegistry(redis, RegistrySettings(latest_ttl_s=60))
    await registry.register("t", "person", SchemaDefinition(**V1))
    reads = 0
    release = asyncio.Event()
    locate = registry._locate_stored

    async def slow_locate(tenant: str, name: str) -> tuple[str, int, bool]:
        nonlocal reads
        reads += 1
        located = await locate(tenant, name)  # read before the retirement
        await release.wait()
        return located

    registry._locate_stored = slow_locate  # type: ignore[method-assign]
    early = [asyncio.create_task(registry.resolve("t", "person")) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert reads == 1, "three concurrent lookups, one read"
    registry._locate_stored = locate  # type: ignore[method-assign]
    await registry.retire("t", "person")
    late = asyncio.create_task(registry.resolve("t", "person"))  # while the early read is still in flight
    await asyncio.sleep(0.05)
    release.set()
    assert [(await task).version.version for task in early] == [1, 1, 1], "begun before: answered as read"
    for attempt in (late, asyncio.create_task(registry.resolve("t", "person"))):
        with pytest.raises(SchemaNotFoundError, match="retired"):
            await attempt


# --- $ref: cycles and dangling references refused at registration, recursion through the value accepted ------------

REFS_REDIS_URL = "redis://127.0.0.1:6379/8"


@pytest.fixture
async def refs_client(settings: Settings, fake_model: FakeModel) -> AsyncIterator[AsyncTestClient[Any]]:
    """The app on Redis database 8, flushed before and after."""
    async with (
        flushed_db(REFS_REDIS_URL),
        app_client(settings.model_copy(update={"redis_url": REFS_REDIS_URL}), fake_model.handler) as test_client,
    ):
        yield test_client


@pytest.mark.parametrize(
    ("schema", "pointer"),
    [
        ({"type": "object", "$ref": "#"}, "/$ref"),
        (
            {
                "type": "object",
                "properties": {"a": {"$ref": "#/$defs/a"}},
                "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
            },
            "/$defs/b/$ref",
        ),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, "/properties/a/$ref"),
        ({"type": "object", "properties": {"a": {"$ref": "#nowhere"}}}, "/properties/a/$ref"),
    ],
    ids=["self", "a-b-a", "missing", "no-anchor"],
)
async def test_cyclic_and_unresolvable_refs_are_refused_with_a_pointer(
    refs_client: AsyncTestClient[Any], schema: dict[str, Any], pointer: str
) -> None:
    refused = await refs_client.put("/v1/schemas/looping", json={"json_schema": schema})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["pointer"] == pointer
    assert (await refs_client.get("/v1/schemas/looping")).status_code == 404, "nothing stored"


TREE_SCHEMA = {
    "type": "object",
    "properties": {"root": {"$ref": "#/$defs/node"}},
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "size": {"type": "integer"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            },
        }
    },
}


async def test_a_recursive_tree_schema_registers_and_extracts(
    refs_client: AsyncTestClient[Any], fake_model: FakeModel
) -> None:
    registered = await refs_client.put("/v1/schemas/tree", json={"json_schema": TREE_SCHEMA})
    assert registered.status_code == 201, registered.text
    text = "src (3 files) holds lib (2 files)"
    answer = {"root": {"name": "src", "size": "3", "children": [{"name": "lib", "size": 2.0, "children": []}]}}
    fake_model.reply(answer)
    extracted = await refs_client.post("/v1/extract", json={"schema": "tree", "text": text})
    assert extracted.status_code == 200, extracted.text
    assert extracted.json()["data"] == {
        "root": {"name": "src", "size": 3, "children": [{"name": "lib", "size": 2, "children": []}]}
    }
