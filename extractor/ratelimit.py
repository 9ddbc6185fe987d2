"""Per-tenant request rate (GCRA) and requests in flight, counted in Redis so that every process of the service
shares them; one Lua script decides and records both at once.

GCRA keeps one number per tenant, the theoretical arrival time: a request is allowed while it is no further than
``burst`` emission intervals in the future. Requests in flight are leases in a sorted set scored by when they
lapse, so a process that dies mid-request frees its leases within ``lease_s``.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from extractor import keys
from extractor.limit_settings import TenantLimits

__all__ = ["Admission", "TenantLimiter"]

_ADMIT = """
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_in_flight = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
if max_in_flight > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= max_in_flight then
    return {0, 1000, 0, 0, 'in_flight'}
  end
end
local remaining, reset = -1, 0
if interval > 0 then
  local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
  local allow_at = tat + interval - burst * interval
  if allow_at > now then
    return {0, allow_at - now, 0, tat - now, 'rate'}
  end
  tat = tat + interval
  redis.call('SET', KEYS[1], tat, 'PX', math.max(1, tat - now))
  remaining = math.floor((now - (tat - burst * interval)) / interval)
  reset = tat - now
end
if max_in_flight > 0 then
  redis.call('ZADD', KEYS[2], now + lease, ARGV[5])
  redis.call('PEXPIRE', KEYS[2], lease)
end
return {1, 0, remaining, reset, ''}
"""


@dataclass(frozen=True)
class Admission:
    """The limiter's answer; ``lease`` is to be released when the request ends (None without an in-flight cap)."""

    allowed: bool
    retry_after_s: float
    reason: str
    """``rate`` or ``in_flight`` when refused."""
    remaining: int | None
    reset_s: float
    lease: str | None


class TenantLimiter:
    def __init__(self, redis: Redis, lease_s: float) -> None:
        self._redis = redis
        self._script = redis.register_script(_ADMIT)
        self._lease_ms = math.ceil(lease_s * 1000)

    async def admit(self, tenant: str, limits: TenantLimits) -> Admission:
        interval_ms = 0 if limits.rate_per_s is None else 1000.0 / limits.rate_per_s
        lease = uuid.uuid4().hex if limits.max_in_flight else None
        args = [interval_ms, limits.burst, limits.max_in_flight or 0, self._lease_ms, lease or ""]
        allowed, wait_ms, remaining, reset_ms, reason = await self._script(
            keys=[keys.rate(tenant), keys.requests_in_flight(tenant)], args=args
        )
        return Admission(
            allowed=bool(allowed),
            retry_after_s=float(wait_ms) / 1000,
            reason=str(reason),
            remaining=None if int(remaining) < 0 else int(remaining),
            reset_s=float(reset_ms) / 1000,
            lease=lease if allowed else None,
        )

    async def release(self, tenant: str, lease: str) -> None:
        await self._redis.zrem(keys.requests_in_flight(tenant), lease)
