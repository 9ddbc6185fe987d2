"""Start-up checks of the API keys, the circuit breaker's states, the pattern time limit and the nesting bound."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import ValidationError

from extractor.errors import CircuitOpenError
from extractor.extraction.breaker import BreakerState, CircuitBreaker
from extractor.jobs.lineage import created_at, new_batch_id
from extractor.nesting import TooDeepError, depth_of, loads_bounded
from extractor.patterns import PatternTimeoutError, search
from extractor.persistence import persistence_problem
from extractor.settings import Settings


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ("acme:same,globex:same", "same API key"),
        ("acme:k1,acme:k2", "listed twice"),
        ("acme: k1", "spaces"),
        ("acme :k1", "spaces"),
        ("acme:k1,,globex:k2", "entry 2"),
        ("acme:", "tenant:key"),
    ],
)
def test_api_keys_that_would_change_meaning_are_a_startup_error(
    monkeypatch: pytest.MonkeyPatch, keys: str, says: str
) -> None:
    monkeypatch.setenv("EXTRACTOR_API_KEYS", keys)
    with pytest.raises(ValidationError, match=says):
        Settings()


def test_the_breaker_opens_after_repeated_failures_and_lets_one_probe_through() -> None:
    breaker = CircuitBreaker(failures=2, cooldown_s=0.05)
    breaker.before_call()
    breaker.failed()
    breaker.before_call()
    breaker.failed()
    assert breaker.state == BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as refused:
        breaker.before_call()
    assert refused.value.retry_after is not None
    assert refused.value.retry_after >= 1
    time.sleep(0.06)
    breaker.before_call()  # the probe
    with pytest.raises(CircuitOpenError):
        breaker.before_call()  # only one probe at a time
    breaker.succeeded()
    assert breaker.state in {BreakerState.CLOSED}  # (a set: mypy keeps the narrowing of the earlier assert)
    breaker.before_call()


def test_a_failed_probe_opens_the_breaker_again() -> None:
    breaker = CircuitBreaker(failures=1, cooldown_s=0.05)
    breaker.failed()
    time.sleep(0.06)
    breaker.before_call()
    breaker.failed()
    assert breaker.state == BreakerState.OPEN


def test_a_catastrophic_pattern_stops_at_its_time_limit() -> None:
    started = time.process_time()  # CPU time: a loaded machine slows the wall clock, not the work done
    with pytest.raises(PatternTimeoutError):
        search("^(a|a)*$", "a" * 40 + "!")
    assert time.process_time() - started < 0.5
    assert search(r"^\p{Letter}+$", "Straße")


def test_depth_is_measured_without_recursion_and_bounded_parsing_refuses_deep_json() -> None:
    deep: list[object] = []
    node = deep
    for _ in range(100_000):
        child: list[object] = []
        node.append(child)
        node = child
    assert depth_of(deep) == 100_001
    assert depth_of(deep, stop_after=10) == 11
    with pytest.raises(TooDeepError):
        loads_bounded("[" * 50_000 + "]" * 50_000, 64)
    assert loads_bounded('{"a": [1]}', 2) == {"a": [1]}


def test_batch_ids_carry_their_creation_time() -> None:
    batch_id = new_batch_id(now=1_700_000_000.5)
    assert len(batch_id) == 32
    assert int(batch_id, 16) >= 0
    assert created_at(batch_id) == pytest.approx(1_700_000_000.5, abs=0.001)


@pytest.mark.parametrize(
    ("config", "warned"),
    [
        ({"save": "", "appendonly": "no"}, True),
        ({"save": "3600 1", "appendonly": "no"}, False),
        ({"save": "", "appendonly": "yes"}, False),
    ],
)
def test_a_redis_without_persistence_is_named(config: dict[str, str], warned: bool) -> None:
    assert (persistence_problem(config) is not None) == warned


async def test_the_store_gate_holds_model_calls_until_redis_answers_again() -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from extractor.jobs.store_gate import StoreGate

    pings: list[float] = []

    async def ping() -> None:
        pings.append(time.perf_counter())
        if len(pings) < 3:
            raise RedisConnectionError("down")

    gate = StoreGate(ping)
    await gate.wait()  # open: no ping
    assert pings == []
    gate.close(RedisConnectionError("write failed"))
    assert not gate.is_open
    started = time.perf_counter()
    await asyncio.gather(gate.wait(), gate.wait(), gate.wait())  # three items wait; one of them pings
    assert gate.is_open
    assert len(pings) == 3
    assert time.perf_counter() - started >= 1.0  # 0.5 s, then 1 s between the failed pings
