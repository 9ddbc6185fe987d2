"""The parts of SAQ below its public API that ``extractor/jobs/queue.py`` and ``jobs/worker.py`` rely on.

``PatientQueue`` overrides ``dequeue``, ``finish``, ``retry``, ``disconnect``, ``sweep`` and ``abort``, reads
``_active``, ``_queued`` and ``_pubsub``, and hooks the sweep's give-up through ``swept_error_message``; the worker
reads ``job_task_contexts`` and clears ``SIGNALS``; the KEDA scaler watches SAQ's queued list by name.
pyproject.toml pins SAQ to the versions these were checked against:
when a new SAQ changes one of them, this fails, and the pin is moved only once the override is brought in line.
"""

from __future__ import annotations

import dataclasses
import inspect
import signal
import tomllib
from importlib.metadata import version
from typing import Any

import pytest
from packaging.requirements import Requirement
from saq import Worker
from saq.job import Job, Status
from saq.queue.base import Queue
from saq.queue.redis import RedisQueue
from saq.types import Context, JobTaskContext

from extractor import keys
from extractor.jobs.queue import PatientQueue, open_queue
from tests.support.processes import ROOT

# What our overrides accept and pass on, parameter by parameter: (name, kind, default).
_P = inspect.Parameter
OVERRIDDEN: dict[str, list[tuple[str, Any, Any]]] = {
    "dequeue": [
        ("self", _P.POSITIONAL_OR_KEYWORD, _P.empty),
        ("timeout", _P.POSITIONAL_OR_KEYWORD, 0.0),
        ("poll_interval", _P.POSITIONAL_OR_KEYWORD, 0.0),
    ],
    "finish": [
        ("self", _P.POSITIONAL_OR_KEYWORD, _P.empty),
        ("job", _P.POSITIONAL_OR_KEYWORD, _P.empty),
        ("status", _P.POSITIONAL_OR_KEYWORD, _P.empty),
        ("result", _P.KEYWORD_ONLY, None),
        ("error", _P.KEYWORD_ONLY, None),
        ("kwargs", _P.VAR_KEYWORD, _P.empty),
    ],
    "retry": [
        ("self", _P.POSITIONAL_OR_KEYWORD, _P.empty),
        ("job", _P.POSITIONAL_OR_KEYWORD, _P.empty),
        ("error", _P.POSITIONAL_OR_KEYWORD, _P.empty),
    ],
    "disconnect": [("self", _P.POSITIONAL_OR_KEYWORD, _P.empty)],
    "sweep": [
        ("self", _P.POSITIONAL_OR_KEYWORD, _P.empty),
        ("lock", _P.POSITIONAL_OR_KEYWORD, 60),
        ("abort", _P.POSITIONAL_OR_KEYWORD, 5.0),
    ],
    "abort": [
        ("self", _P.POSITIONAL_OR_KEYWORD, _P.empty),
        ("job", _P.POSITIONAL_OR_KEYWORD, _P.empty),
        ("error", _P.POSITIONAL_OR_KEYWORD, _P.empty),
        ("ttl", _P.POSITIONAL_OR_KEYWORD, 5),
    ],
}


def _shape(function: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def _code(function: Any) -> str:
    """The source without whitespace, so a reformatting of SAQ is no change."""
    return "".join(inspect.getsource(function).split())


def test_the_installed_saq_is_inside_the_pinned_range() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [pin] = [Requirement(line) for line in dependencies if Requirement(line).name == "saq"]
    assert pin.specifier, "SAQ is pinned to a range"
    assert version("saq") in pin.specifier, f"saq {version('saq')} is outside {pin}: check this file, then the pin"


@pytest.mark.parametrize("name", sorted(OVERRIDDEN))
def test_the_methods_we_override_take_what_our_overrides_take(name: str) -> None:
    ours = getattr(PatientQueue, name)
    assert ours.__qualname__ == f"PatientQueue.{name}", "still overridden"
    assert inspect.iscoroutinefunction(getattr(RedisQueue, name))
    assert _shape(getattr(RedisQueue, name)) == OVERRIDDEN[name] == _shape(ours)


def test_the_queue_keys_we_read_are_saq_s_lists_under_the_queue_s_name() -> None:
    queue = open_queue("redis://127.0.0.1:6379/0")
    assert queue.name == keys.BATCH_QUEUE
    assert isinstance(queue._queued, str)
    assert isinstance(queue._active, str)
    # the KEDA scaler (deploy/k8s/keda) names the queued list; keys.py names SAQ's prefixes
    assert queue._queued == f"saq:{keys.BATCH_QUEUE}:queued"
    assert queue._active == f"saq:{keys.BATCH_QUEUE}:active"
    assert queue.job_id("b:0") == f"saq:job:{keys.BATCH_QUEUE}:b:0"
    assert "max_concurrent_ops" in inspect.signature(RedisQueue.__init__).parameters
    # PatientQueue.disconnect closes SAQ's pub/sub multiplexer itself on a cluster client
    assert inspect.iscoroutinefunction(queue._pubsub.close)
    assert "awaitself._pubsub.close()" in _code(RedisQueue.disconnect)


def test_a_job_moves_from_the_head_of_queued_to_the_tail_of_active() -> None:
    """``_UNCLAIM`` undoes a dequeue (``LREM`` from the tail of active, ``LPUSH`` to the head of queued): right only
    while the dequeue takes from the head and enqueue appends at the tail."""
    dequeue = _code(RedisQueue.dequeue)
    assert 'blmove(self._queued,self._active,timeout,"LEFT","RIGHT",)' in dequeue
    assert "redis.call('RPUSH',KEYS[3],KEYS[2])" in _code(RedisQueue._enqueue)


def test_the_sweep_gives_up_on_a_job_through_finish_with_its_swept_message() -> None:
    """``PatientQueue.finish`` tells the sweep's give-up (``on_lost``) by status, error and ``retryable``."""
    sweep = _code(RedisQueue.sweep)
    assert "ifjob.retryable:awaitself.retry(job,error=self.swept_error_message)" in sweep
    assert "else:awaitself.finish(job,Status.ABORTED,error=self.swept_error_message)" in sweep
    # PatientQueue.abort only takes a swept job out of the active list, and its sweep waits for no abort: right
    # while the sweep aborts, waits ``abort`` seconds at most, then re-queues or finishes
    order = ["awaitself.abort(job,error=self.swept_error_message)", "awaitjob.refresh(abort)", "ifjob.retryable:"]
    assert all(step in sweep for step in order)
    assert [sweep.index(step) for step in order] == sorted(sweep.index(step) for step in order)
    assert "exceptasyncio.TimeoutError:" in sweep
    assert isinstance(Queue.swept_error_message, property)
    assert isinstance(open_queue("redis://127.0.0.1:6379/0").swept_error_message, str)


def test_a_job_has_the_fields_we_enqueue_with_and_read() -> None:
    fields = {field.name for field in dataclasses.fields(Job)}
    enqueued = {"key", "timeout", "heartbeat", "retries", "retry_delay", "retry_backoff", "ttl", "kwargs"}
    read = {"attempts", "status", "error"}
    assert enqueued | read <= fields
    assert isinstance(Job.retryable, property)
    assert isinstance(Job.id, property)  # what _UNCLAIM moves between the lists
    assert inspect.iscoroutinefunction(Job.update)
    assert {Status.ABORTED.value, Status.QUEUED.value} == {"aborted", "queued"}
    assert "job" in Context.__optional_keys__ | Context.__required_keys__  # ctx.get("job") in the chunk task


async def test_the_worker_exposes_its_running_jobs_and_its_signals() -> None:
    assert Worker.SIGNALS == [signal.SIGINT, signal.SIGTERM]  # cleared inside `serve`, where uvicorn owns them
    assert "task" in JobTaskContext.__required_keys__
    parameters = inspect.signature(Worker.__init__).parameters
    passed = {"functions", "startup", "shutdown", "id", "concurrency", "timers", "dequeue_timeout"}
    assert passed | {"shutdown_grace_period_s"} <= set(parameters)  # build_worker's arguments
    queue = open_queue("redis://127.0.0.1:6379/0")
    worker: Worker[Context] = Worker(queue, functions=[])
    try:
        assert worker.job_task_contexts == {}
        assert set(worker.timers) == {"sweep", "abort", "schedule", "worker_info"}
    finally:
        worker.pool.shutdown()
        await queue.redis.aclose()
