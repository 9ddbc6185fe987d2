"""Concurrent misses of one key share one load."""

from __future__ import annotations

import asyncio

import pytest

from extractor.singleflight import SingleFlight


async def test_concurrent_callers_share_one_load_and_a_later_caller_loads_again() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        number = loads
        await asyncio.sleep(0.01)
        return number

    assert await asyncio.gather(*(flight.run("k", load) for _ in range(50))) == [1] * 50
    assert await flight.run("k", load) == 2, "the shared load is over: the next miss loads afresh"
    assert list(await asyncio.gather(flight.run("a", load), flight.run("b", load))) == [3, 4], "one load per key"


async def test_a_failure_reaches_every_caller_and_one_cancelled_caller_does_not_cancel_the_load() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    release = asyncio.Event()

    async def failing() -> int:
        await release.wait()
        raise LookupError("gone")

    first = asyncio.create_task(flight.run("k", failing))
    second = asyncio.create_task(flight.run("k", failing))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    with pytest.raises(LookupError, match="gone"):
        await second
    assert first.cancelled()
