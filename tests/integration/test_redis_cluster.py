"""extractor on a real Redis Cluster (three masters started by the test): the service finds the cluster from any
node's URL, and the registry, the cache, batches with a worker and a cancel (pub/sub) all work on it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis import Redis as SyncRedis
from redis.asyncio.cluster import RedisCluster

from extractor import keys
from extractor.jobs.queue import open_queue
from extractor.redis_connect import connect
from tests.support.app import app_client, make_settings
from tests.support.batches import GOOD, documents, result_lines, submit, wait_finished
from tests.support.fake_model import FakeModel
from tests.support.redis_topologies import redis_cluster

JOBS = {"concurrency": 8, "chunk_size": 4, "retry_base_s": 0.01, "heartbeat_s": 2, "sweep_s": 1}


@pytest.fixture(scope="module")
def cluster_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    with redis_cluster(Path(tmp_path_factory.mktemp("cluster"))) as ports:
        yield ports


@pytest.fixture
def cluster(cluster_ports: list[int]) -> Iterator[list[int]]:
    """The cluster's ports, every node emptied before and after the test."""

    def flush() -> None:
        for port in cluster_ports:
            with SyncRedis(port=port) as node:
                node.flushall()

    flush()
    yield cluster_ports
    flush()


def _node_url(ports: list[int], n: int = 1) -> str:
    return f"redis://127.0.0.1:{ports[n]}/0"


@pytest.fixture
async def client(cluster: list[int], fake_model: FakeModel) -> AsyncIterator[AsyncTestClient[Any]]:
    fake_model.reply(GOOD)
    settings = make_settings(redis_url=_node_url(cluster), jobs=JOBS)  # the second node: any node will do
    async with app_client(settings, fake_model.handler) as test_client:
        yield test_client


def _keys_by_node(ports: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for port in ports:
        with SyncRedis(port=port, decode_responses=True) as node:
            found[port] = [str(key) for key in node.keys("*")]
    return found


async def test_any_node_s_url_gives_a_cluster_client_and_a_plain_redis_url_does_not(cluster: list[int]) -> None:
    for url in (_node_url(cluster, 0), f"redis+cluster://127.0.0.1:{cluster[2]}"):
        client = connect(url)
        try:
            assert isinstance(client, RedisCluster)
            await client.set("greeting", "hello")
            assert await client.get("greeting") == "hello"
        finally:
            await client.aclose()
    single = connect("redis://127.0.0.1:6379/7")
    try:
        assert not isinstance(single, RedisCluster)
    finally:
        await single.aclose()
    queue = open_queue(_node_url(cluster))
    await queue.connect()
    try:
        assert isinstance(queue.redis, RedisCluster)
        assert await queue.count("queued") == 0
    finally:
        await queue.disconnect()


async def test_registry_versions_a_schema_whose_keys_share_one_slot(
    client: AsyncTestClient[Any], cluster: list[int]
) -> None:
    schema = {"json_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
    first = await client.put("/v1/schemas/city", json=schema)
    assert first.status_code == 201, first.text
    schema["json_schema"]["properties"]["country"] = {"type": "string"}  # type: ignore[index]
    second = await client.put("/v1/schemas/city", json=schema)
    assert (second.status_code, second.json()["version"]) == (201, 2)
    assert (await client.put("/v1/schemas/city", json=schema)).status_code == 200  # same content: no new version
    assert (await client.get("/v1/schemas/city/versions/1")).json()["version"] == 1
    assert "city" in {s["name"] for s in (await client.get("/v1/schemas")).json()}
    stored = [key for found in _keys_by_node(cluster).values() for key in found]
    own = [key for key in stored if key.startswith(keys.PREFIX + ":{") and f"{{{keys.SHARED_TENANT}}}" not in key]
    assert len(own) == 4, own  # the tenant's names set, the schema's record, its two versions
    with SyncRedis(port=cluster[0]) as node:
        slots = {node.execute_command("CLUSTER KEYSLOT", key) for key in own}
    assert len(slots) == 1, own


async def test_cache_answers_the_second_request_and_its_keys_spread_over_the_shards(
    client: AsyncTestClient[Any], fake_model: FakeModel, cluster: list[int]
) -> None:
    texts = [f"ACME Market receipt {n}, TOTAL 3.70 EUR" for n in range(30)]
    for text in texts:
        response = await client.post("/v1/extract", json={"schema": "receipt", "text": text})
        assert response.status_code == 200, response.text
        assert response.json()["cached"] is False
    again = await client.post("/v1/extract", json={"schema": "receipt", "text": texts[3]})
    assert again.json()["cached"] is True
    assert fake_model.chat_calls == 30
    cache_keys = {port: [k for k in found if ":cache:" in k] for port, found in _keys_by_node(cluster).items()}
    assert sum(map(len, cache_keys.values())) == 30
    assert all(cache_keys.values()), f"30 cache keys, on every shard: {cache_keys}"


async def test_a_batch_runs_on_the_cluster_with_every_item_recorded_once(
    client: AsyncTestClient[Any], fake_model: FakeModel, cluster: list[int]
) -> None:
    docs = documents(60)
    accepted = (await submit(client, docs)).json()
    status = await wait_finished(client, accepted["batch_id"], within_s=60)
    assert status["counts"] == {"queued": 0, "running": 0, "ok": 60, "empty": 0, "failed": 0, "cancelled": 0}
    lines = await result_lines(client, accepted["batch_id"])
    assert [line["id"] for line in lines] == [doc["id"] for doc in docs]
    assert fake_model.chat_calls == 60
    with SyncRedis(port=cluster[0]) as node:
        batch_slots = {
            node.execute_command("CLUSTER KEYSLOT", key(accepted["batch_id"]))
            for key in (keys.batch, keys.batch_items, keys.batch_results, keys.batch_documents, keys.batch_doc_ids)
        }
        queue_slots = {
            node.execute_command("CLUSTER KEYSLOT", f"saq:{keys.BATCH_QUEUE}:{name}") for name in ("queued", "active")
        }
    assert len(batch_slots) == 1
    assert len(queue_slots) == 1


async def test_a_cancel_reaches_the_worker_over_the_cluster_s_pub_sub(
    cluster: list[int], fake_model: FakeModel
) -> None:
    fake_model.reply(GOOD)

    async def slow(request: Any) -> Any:
        if request.url.path.endswith("/chat/completions"):
            await asyncio.sleep(0.05)
        return fake_model.handler(request)

    settings = make_settings(redis_url=_node_url(cluster, 2), jobs={**JOBS, "concurrency": 4})
    async with app_client(settings, slow) as client:
        batch_id = (await submit(client, documents(200))).json()["batch_id"]
        while (await client.get(f"/v1/batches/{batch_id}")).json()["done"] < 20:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        started = time.monotonic()
        cancelled = await client.delete(f"/v1/batches/{batch_id}")
        assert cancelled.status_code == 200, cancelled.text
        body = cancelled.json()
        assert body["status"] == "cancelled"
        assert body["counts"]["running"] == 0, "the worker stopped the running items before the answer"
        assert time.monotonic() - started < 3
        calls = fake_model.chat_calls
        await asyncio.sleep(0.5)
        assert fake_model.chat_calls == calls, "nothing of the batch started after the cancel"
        assert body["counts"]["ok"] + body["counts"]["cancelled"] == 200
