"""Our own batch state in our own Redis keys, so the queue library stays swappable.

A batch is a record hash (tenant, schema, options, counts by item status, times), a list of documents, a list of
their ids, a hash of item statuses and a hash of results. Every item transition is one Lua script that checks the
item's current status first, so a document re-delivered after a worker died, or run twice, is finished exactly once.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from extractor import keys
from extractor.autopipeline import AutoPipeline
from extractor.errors import BatchLostError, BatchNotFoundError
from extractor.jobs import lineage
from extractor.vocabulary import FINAL_ITEM_STATUSES, BatchStatus, ItemStatus

__all__ = ["BatchRecord", "BatchStore", "new_batch_id"]


COUNTED = tuple(status.value for status in ItemStatus)

# The batch is finished when no item is queued or running any more: its end is stamped once.
_FINISH_IF_DONE = """
local function finish_if_done(record, now)
  if tonumber(redis.call('HGET', record, 'queued')) + tonumber(redis.call('HGET', record, 'running')) == 0 then
    redis.call('HSETNX', record, 'finished_at', now)
  end
end
"""

# KEYS: record, items. ARGV: now, start, stop. The items start..stop-1 that are queued or running (re-delivered after
# a worker died) become running, and their indexes are returned; in a cancelled batch they become cancelled instead,
# and none is returned. Final items are left alone. Run again on a chunk whose run was interrupted, it cancels the
# items of a cancelled batch and leaves a live batch's running for the re-delivery.
_CLAIM = (
    _FINISH_IF_DONE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local cancelled = redis.call('HGET', KEYS[1], 'state') == 'cancelled'
local run, was = {}, {queued = 0, running = 0}
for i = tonumber(ARGV[2]), tonumber(ARGV[3]) - 1 do
  local status = redis.call('HGET', KEYS[2], i)
  if status == 'queued' or status == 'running' then
    was[status] = was[status] + 1
    if cancelled then
      redis.call('HSET', KEYS[2], i, 'cancelled')
    else
      if status == 'queued' then redis.call('HSET', KEYS[2], i, 'running') end
      run[#run + 1] = i
    end
  end
end
if cancelled then
  redis.call('HINCRBY', KEYS[1], 'queued', 0 - was.queued)  -- not -n: Lua's -0 is no integer to Redis
  redis.call('HINCRBY', KEYS[1], 'running', 0 - was.running)
  redis.call('HINCRBY', KEYS[1], 'cancelled', was.queued + was.running)
  finish_if_done(KEYS[1], ARGV[1])
elseif #run > 0 then
  redis.call('HINCRBY', KEYS[1], 'queued', 0 - was.queued)
  redis.call('HINCRBY', KEYS[1], 'running', was.queued)
  redis.call('HSETNX', KEYS[1], 'started_at', ARGV[1])
end
return run
"""
)

# The results hash is created by the first finished item, after the record: it expires at the record's own
# deadline (an absolute time written with the record, so both keys go at the same millisecond). A record written
# before that field existed lends its remaining life instead.
_EXPIRE_LIKE_RECORD = """
local function expire_like_record(record, key)
  if redis.call('PTTL', key) ~= -1 then return end
  local at = redis.call('HGET', record, 'expires_at_ms')
  if at then
    redis.call('PEXPIREAT', key, at)
  else
    local left = redis.call('PTTL', record)
    if left > 0 then redis.call('PEXPIRE', key, left) end
  end
end
"""

# KEYS: record, items, results. ARGV: index, final status, result JSON ('' for none), now.
# Only a running item finishes: the second of two racing runs of one item writes nothing, and neither does a run
# whose item a cancel settled first.
_FINISH = (
    _EXPIRE_LIKE_RECORD
    + _FINISH_IF_DONE
    + """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= 'running' then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
  expire_like_record(KEYS[1], KEYS[3])
end
redis.call('HINCRBY', KEYS[1], 'running', -1)
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
finish_if_done(KEYS[1], ARGV[4])
return 1
"""
)

# KEYS: record, items, results. ARGV: now, then (index, failed result JSON) pairs. A chunk the queue gave up on:
# each of its items not final yet fails with the given line (cancelled instead, if the batch was), so the batch
# still finishes. Returns how many items it settled.
_ABANDON = (
    _EXPIRE_LIKE_RECORD
    + _FINISH_IF_DONE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local cancelled = redis.call('HGET', KEYS[1], 'state') == 'cancelled'
local n = 0
for i = 2, #ARGV, 2 do
  local status = redis.call('HGET', KEYS[2], ARGV[i])
  if status == 'queued' or status == 'running' then
    redis.call('HINCRBY', KEYS[1], status, -1)
    if cancelled then
      redis.call('HSET', KEYS[2], ARGV[i], 'cancelled')
      redis.call('HINCRBY', KEYS[1], 'cancelled', 1)
    else
      redis.call('HSET', KEYS[2], ARGV[i], 'failed')
      redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
      redis.call('HINCRBY', KEYS[1], 'failed', 1)
    end
    n = n + 1
  end
end
if n > 0 then expire_like_record(KEYS[1], KEYS[3]) end
finish_if_done(KEYS[1], ARGV[1])
return n
"""
)

# KEYS: idempotency key. ARGV: new binding, ttl seconds, the binding it may replace ('' for none).
# Bind the key unless another binding than the one we saw (a dead batch's) holds it; returns that binding, or nil.
_BIND = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[3] then return current end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""

_BATCH_ID = re.compile(r"[0-9a-f]{32}")

# KEYS: record, items. ARGV: now, batch id. Queued items become cancelled at once; running ones end when their
# worker, told on the cancel channel, stops them.
_CANCEL = f"""
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HGET', KEYS[1], 'state') == 'cancelled' or redis.call('HEXISTS', KEYS[1], 'finished_at') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'cancelled_at', ARGV[1])
local flat = redis.call('HGETALL', KEYS[2])
local n = 0
for i = 1, #flat, 2 do
  if flat[i + 1] == 'queued' then
    redis.call('HSET', KEYS[2], flat[i], 'cancelled')
    n = n + 1
  end
end
redis.call('HINCRBY', KEYS[1], 'queued', 0 - n)
redis.call('HINCRBY', KEYS[1], 'cancelled', n)
if tonumber(redis.call('HGET', KEYS[1], 'running')) == 0 then
  redis.call('HSETNX', KEYS[1], 'finished_at', ARGV[1])
else
  redis.call('PUBLISH', '{keys.BATCH_CANCELS}', ARGV[2])
end
return 1
"""


@dataclass(frozen=True)
class BatchRecord:
    """One batch as stored: what to run and how far it got."""

    batch_id: str
    tenant: str
    schema_ref: str
    options: dict[str, Any]
    total: int
    chunk_size: int
    digest: str
    cancelled: bool
    counts: dict[str, int]
    created_at: float
    started_at: float | None
    finished_at: float | None
    trace: dict[str, str] = field(default_factory=dict)
    """The submission's trace context (``traceparent``), which each item's trace links to; empty without tracing."""

    @property
    def status(self) -> BatchStatus:
        if self.cancelled:
            return BatchStatus.CANCELLED
        if self.finished_at is not None:
            return BatchStatus.FINISHED
        return BatchStatus.RUNNING if self.started_at is not None else BatchStatus.QUEUED

    @property
    def done(self) -> int:
        return sum(self.counts[s] for s in FINAL_ITEM_STATUSES)

    def throughput(self, now: float | None = None) -> float:
        """Documents processed (ok, empty or failed; not cancelled) per second since the first one started."""
        if self.started_at is None:
            return 0.0
        end = self.finished_at or (now if now is not None else time.time())
        processed = self.done - self.counts[ItemStatus.CANCELLED]
        return processed / max(end - self.started_at, 1e-3)


def _optional_float(value: str | None) -> float | None:
    return float(value) if value else None


def _record(batch_id: str, raw: dict[str, str]) -> BatchRecord:
    return BatchRecord(
        batch_id=batch_id,
        tenant=raw["tenant"],
        schema_ref=raw["schema"],
        options=json.loads(raw["options"]),
        total=int(raw["total"]),
        chunk_size=int(raw["chunk_size"]),
        digest=raw["digest"],
        cancelled=raw.get("state") == "cancelled",
        counts={status: int(raw.get(status, 0)) for status in COUNTED},
        created_at=float(raw["created_at"]),
        started_at=_optional_float(raw.get("started_at")),
        finished_at=_optional_float(raw.get("finished_at")),
        trace=json.loads(raw.get("trace") or "{}"),
    )


def new_batch_id() -> str:
    """A fresh batch id: 32 lowercase hex digits (anything else is no batch of ours) that carry their creation time
    (``jobs.lineage``)."""
    return lineage.new_batch_id()


def _not_found(batch_id: str) -> BatchNotFoundError:
    return BatchNotFoundError(f"no batch {batch_id!r}", batch_id=batch_id)


def _binding(raw: str) -> tuple[str, str]:
    batch_id, _, digest = raw.partition(" ")
    return batch_id, digest


def _batch_keys(batch_id: str) -> list[str]:
    return [
        keys.batch(batch_id),
        keys.batch_items(batch_id),
        keys.batch_results(batch_id),
        keys.batch_documents(batch_id),
        keys.batch_doc_ids(batch_id),
    ]


class BatchStore:
    """Reads and writes batch state; every item transition is atomic and checked against the item's status."""

    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self._redis = redis
        self._ttl = ttl_s
        self._claim = redis.register_script(_CLAIM)
        self._finish = redis.register_script(_FINISH)
        self._cancel = redis.register_script(_CANCEL)
        self._abandon = redis.register_script(_ABANDON)
        self._bind = redis.register_script(_BIND)
        self._batched = AutoPipeline(redis)  # the finishes of many items at once: one round trip

    async def create(
        self,
        batch_id: str,
        *,
        tenant: str,
        schema_ref: str,
        options: dict[str, Any],
        documents: Sequence[tuple[str, str]],
        chunk_size: int,
        digest: str,
        trace: dict[str, str] | None = None,
    ) -> None:
        """Write a new batch with every item queued (one transaction: a batch exists whole or not at all)."""
        now = time.time()
        expires_at_ms = int((now + self._ttl) * 1000)
        record: dict[FieldT, EncodableT] = {
            **({"trace": json.dumps(trace)} if trace else {}),
            "tenant": tenant,
            "schema": schema_ref,
            "options": json.dumps(options),
            "total": len(documents),
            "chunk_size": chunk_size,
            "digest": digest,
            "state": "active",
            "created_at": now,
            "expires_at_ms": expires_at_ms,
            **dict.fromkeys(COUNTED, 0),
            "queued": len(documents),
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.batch(batch_id), mapping=record)
            if documents:
                pipe.hset(keys.batch_items(batch_id), mapping=dict.fromkeys(map(str, range(len(documents))), "queued"))
                pipe.rpush(keys.batch_documents(batch_id), *(json.dumps({"id": i, "text": t}) for i, t in documents))
                pipe.rpush(keys.batch_doc_ids(batch_id), *(doc_id for doc_id, _ in documents))
            for key in _batch_keys(batch_id):
                pipe.pexpireat(key, expires_at_ms)
            await pipe.execute()

    async def ping(self) -> None:
        """Whether Redis answers (the worker's store gate asks before it resumes model calls)."""
        await self._redis.ping()

    async def delete(self, batch_id: str) -> None:
        await self._redis.delete(*_batch_keys(batch_id))

    async def read_idempotency_key(self, tenant: str, key: str) -> tuple[str, str] | None:
        """The (batch id, body digest) ``key`` is bound to, if any."""
        raw = await self._redis.get(keys.batch_idempotency(tenant, key))
        return None if raw is None else _binding(str(raw))

    async def bind_idempotency_key(
        self, tenant: str, key: str, batch_id: str, digest: str, replacing: tuple[str, str] | None = None
    ) -> tuple[str, str] | None:
        """Bind ``key`` to this batch, over ``replacing`` (a binding whose batch is gone) if that is what it holds.

        Returns the binding that won instead when another submission bound the key first.
        """
        stale = " ".join(replacing) if replacing is not None else ""
        name = keys.batch_idempotency(tenant, key)
        held = await self._bind(keys=[name], args=[f"{batch_id} {digest}", self._ttl, stale])
        return None if held is None else _binding(str(held))

    async def exists(self, batch_id: str) -> bool:
        return _BATCH_ID.fullmatch(batch_id) is not None and bool(await self._redis.exists(keys.batch(batch_id)))

    async def get(self, batch_id: str, tenant: str | None = None) -> BatchRecord:
        """The batch; another tenant's batch, or an id no batch could have, is as absent as a missing one (404)."""
        if _BATCH_ID.fullmatch(batch_id) is None:
            raise _not_found(batch_id)
        raw: dict[str, str] = dict(await self._redis.hgetall(keys.batch(batch_id)))  # type: ignore[arg-type]
        if not raw:
            raise await self._missing(batch_id)
        if tenant is not None and raw.get("tenant") != tenant:
            raise _not_found(batch_id)
        return _record(batch_id, raw)

    async def _missing(self, batch_id: str) -> BatchNotFoundError:
        """404 for an id no batch of this store had; 410 ``batch-lost`` for one made before the store's data begins
        (Redis restarted without persistence, or was flushed) that would not have expired yet."""
        made = lineage.created_at(batch_id)
        if time.time() - self._ttl < made < await lineage.store_epoch(self._redis):
            return BatchLostError(
                f"batch {batch_id!r} existed, but Redis lost its data (it restarted without persistence or was "
                "flushed); submit the documents again",
                batch_id=batch_id,
            )
        return _not_found(batch_id)

    async def claim(self, batch_id: str, start: int, stop: int) -> list[tuple[int, dict[str, str]]]:
        """Claim items ``start`` to ``stop - 1`` for a run: (index, document) of those to run, now running.

        None in a cancelled batch (its unfinished items turn cancelled) or a vanished one; final items are skipped.
        One round trip, at the chunk's start: between a permit and a model call there is no Redis at all.
        """
        keys_ = [keys.batch(batch_id), keys.batch_items(batch_id)]
        async with self._redis.pipeline(transaction=False) as pipe:
            await self._claim(keys=keys_, args=[time.time(), start, stop], client=pipe)  # queued, not sent
            pipe.lrange(keys.batch_documents(batch_id), start, stop - 1)
            run, raw = await pipe.execute()
        return [(int(index), json.loads(raw[int(index) - start])) for index in run]

    async def settle(self, batch_id: str, start: int, stop: int) -> None:
        """A chunk's run was interrupted: its unfinished items turn cancelled if the batch was, else stay running
        for the queue's re-delivery."""
        await self._claim(keys=[keys.batch(batch_id), keys.batch_items(batch_id)], args=[time.time(), start, stop])

    async def cancelled(self, batch_id: str) -> bool:
        """Whether the batch was cancelled (or is gone: nothing of it should run either)."""
        return await self._redis.hget(keys.batch(batch_id), "state") in (None, "cancelled")

    async def finish(self, batch_id: str, index: int, status: ItemStatus, line: str | None) -> bool:
        """Record the final status (and result line, encoded JSON) of an item; False if it was already final."""
        payload = line if line is not None else ""
        keys_ = [keys.batch(batch_id), keys.batch_items(batch_id), keys.batch_results(batch_id)]
        args: list[EncodableT] = [index, status.value, payload, time.time()]
        written = await self._batched.call(lambda pipe: self._finish(keys=keys_, args=args, client=pipe))
        return bool(written)

    async def cancel(self, batch_id: str) -> bool:
        """Mark the batch cancelled and its queued items cancelled; False if it was already final."""
        keys_ = [keys.batch(batch_id), keys.batch_items(batch_id)]
        answer = await self._cancel(keys=keys_, args=[time.time(), batch_id])
        if int(answer) < 0:
            raise _not_found(batch_id)
        return bool(answer)

    async def abandon(self, batch_id: str, lines: dict[int, dict[str, Any]]) -> int:
        """Fail every item of ``lines`` (index -> failed result line) that is not final yet; returns how many."""
        flat: list[EncodableT] = [time.time()]
        for index, line in lines.items():
            flat += [index, json.dumps(line)]
        keys_ = [keys.batch(batch_id), keys.batch_items(batch_id), keys.batch_results(batch_id)]
        return int(await self._abandon(keys=keys_, args=flat))

    async def doc_ids(self, batch_id: str, start: int, stop: int) -> list[str]:
        """Document ids of items ``start`` to ``stop - 1``."""
        return [str(doc_id) for doc_id in await self._redis.lrange(keys.batch_doc_ids(batch_id), start, stop - 1)]

    async def item_status(self, batch_id: str, index: int) -> str | None:
        """The status of one item; None if the batch is gone."""
        status = await self._redis.hget(keys.batch_items(batch_id), str(index))
        return None if status is None else str(status)

    async def page(self, batch_id: str, start: int, stop: int) -> list[tuple[str, str | None, str | None]]:
        """(document id, item status, result JSON) for items ``start`` to ``stop - 1``, in submission order."""
        indexes = [str(i) for i in range(start, stop)]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.lrange(keys.batch_doc_ids(batch_id), start, stop - 1)
            pipe.hmget(keys.batch_items(batch_id), indexes)
            pipe.hmget(keys.batch_results(batch_id), indexes)
            ids, statuses, results = await pipe.execute()
        return list(zip(ids, statuses, results, strict=False))
