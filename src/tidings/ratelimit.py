"""Create rate limits per API key: a token bucket per key, shared by every process.

``TIDINGS_CREATE_RATE`` creates per second per API key (0 = off, the default) with
bursts up to ``TIDINGS_CREATE_BURST``. With the memory broker (one process) the buckets
live in memory; with Redis one small script keeps each key's bucket in Redis, so every
process of a deployment draws from the same budget. Buckets are keyed by the API key's
id (a hash, never the key itself) under the broker's prefix.

When Redis does not answer, creates are let through (logged): a Redis outage costs
delivery latency, never creates, and a limiter must not change that.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tidings import telemetry
from tidings.errors import RateLimited
from tidings.protocol import Budgets

log = logging.getLogger("tidings.ratelimit")


class CreateLimiter(Protocol):
    async def take(self, key_id: str) -> float:
        """Spend one create of ``key_id``: 0.0 if allowed, else seconds until one is."""

    async def close(self) -> None: ...


class MemoryCreateLimiter:
    """One process's buckets (the memory broker)."""

    def __init__(self, *, rate: float, burst: int) -> None:
        self._budgets = Budgets(rate=rate, burst=burst)

    async def take(self, key_id: str) -> float:
        return self._budgets.take(key_id)

    async def close(self) -> None:
        return None


# KEYS[1] the bucket; ARGV rate, burst. Redis's own clock, so processes on machines
# with skewed clocks still share one budget. Returns the wait in seconds, as a string
# (Lua numbers would be truncated to integers).
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 't', 'n')
local stamp = tonumber(state[1]) or now
local tokens = tonumber(state[2]) or burst
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 't', tostring(now), 'n', tostring(tokens))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisCreateLimiter:
    """Buckets in Redis, one hash per API key id, shared by every process."""

    def __init__(self, url: str, *, prefix: str, rate: float, burst: int) -> None:
        Budgets(rate=rate, burst=burst)  # validates the arguments
        self._client = Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
        self._script = self._client.register_script(_TAKE)
        self._prefix = f"{prefix}ratelimit:create:"
        self._args = (rate, burst)
        self._warned_at = 0.0

    async def take(self, key_id: str) -> float:
        try:
            wait = await self._script(keys=[self._prefix + key_id], args=self._args)
        except (RedisError, OSError, TimeoutError) as exc:
            now = time.monotonic()
            if now - self._warned_at > 10:
                self._warned_at = now
                log.warning("create rate limit not enforced: Redis unavailable (%r)", exc)
            return 0.0
        return float(wait)

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._client.aclose()


def create_limiter(
    broker_url: str, *, prefix: str, rate: float, burst: int
) -> CreateLimiter | None:
    """The limiter for these settings, or None when limits are off (``rate`` 0)."""
    if rate <= 0:
        return None
    if broker_url.startswith("redis"):
        return RedisCreateLimiter(broker_url, prefix=prefix, rate=rate, burst=burst)
    return MemoryCreateLimiter(rate=rate, burst=burst)


async def charge(limiter: CreateLimiter | None, key_id: str) -> None:
    """Spend one create of ``key_id``; :class:`RateLimited` (429) when it has none left."""
    if limiter is None:
        return
    wait = await limiter.take(key_id)
    if wait > 0:
        telemetry.RATE_LIMITED.inc()
        raise RateLimited(
            "too many creates for this API key; slow down (TIDINGS_CREATE_RATE)",
            retry_after=max(wait, 1e-3),
        )
