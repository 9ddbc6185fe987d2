"""Auto-pipelining against the real Redis: one round trip per loop iteration, each caller its own reply or error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from extractor.autopipeline import AutoPipeline, Queue


class CountingRedis:
    """The real client, counting the pipelines made from it."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.pipelines = 0

    def pipeline(self, **kwargs: Any) -> Any:
        self.pipelines += 1
        return self.redis.pipeline(**kwargs)


def _set(n: int) -> Queue:
    return lambda pipe: pipe.set(f"k{n}", n)


def _get(n: int) -> Queue:
    return lambda pipe: pipe.get(f"k{n}")


async def test_commands_of_one_iteration_share_one_round_trip(redis: Redis) -> None:
    counting = CountingRedis(redis)
    batched = AutoPipeline(counting)  # type: ignore[arg-type]
    await asyncio.gather(*(batched.call(_set(n)) for n in range(50)))
    values = await asyncio.gather(*(batched.call(_get(n)) for n in range(50)))
    assert values == [str(n) for n in range(50)]
    assert counting.pipelines == 2
    assert await batched.call(lambda pipe: pipe.get("k7")) == "7"
    assert counting.pipelines == 3, "a lone caller is sent on its own, at once"


async def test_an_error_reply_fails_only_its_caller(redis: Redis) -> None:
    await redis.set("text", "x")
    batched = AutoPipeline(redis)
    replies = await asyncio.gather(
        batched.call(lambda pipe: pipe.incr("counter")),
        batched.call(lambda pipe: pipe.lpush("text", "y")),  # WRONGTYPE
        batched.call(lambda pipe: pipe.get("text")),
        return_exceptions=True,
    )
    assert replies[0] == 1
    assert isinstance(replies[1], ResponseError)
    assert replies[2] == "x"


async def test_a_cancelled_caller_leaves_the_others_their_replies(redis: Redis) -> None:
    batched = AutoPipeline(redis)
    first = asyncio.ensure_future(batched.call(lambda pipe: pipe.set("a", 1)))
    second = asyncio.ensure_future(batched.call(lambda pipe: pipe.set("b", 2)))
    await asyncio.sleep(0)
    first.cancel()
    assert await second is True
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await redis.get("a") == "1", "its command was already on its way, as a sent command is"


async def test_a_failed_round_trip_fails_every_caller() -> None:
    down = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    batched = AutoPipeline(down)
    replies = await asyncio.gather(
        *(batched.call(lambda pipe: pipe.get("x")) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(reply, RedisConnectionError) for reply in replies)
    await down.aclose()
