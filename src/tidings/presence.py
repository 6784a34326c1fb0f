"""Presence: who is in a topic's room, and whether a user is online, across processes.

Each process counts its own: connections per user (online) and, per topic, connections
that subscribed with ``presence: true`` per user (rooms). Changes are queued without
waiting (:meth:`Presence.opened`, :meth:`Presence.closed`, :meth:`Presence.leave` are
synchronous, so a connection torn down in a cancelled task still leaves) and applied by
one task in batches, summed per key, to a :class:`PresenceStore` that keeps the
cluster-wide counts. A user's first connection in a room sends ``join`` to the room's
channel (``pr:<topic>``), their last one ``leave``: several tabs are one user.

A process that dies cannot say goodbye: in Redis every process renews its entry in a
sorted set scored by expiry (every ``ttl / 3`` seconds); any process finding an expired
entry subtracts that process's counts, sends the ``leave`` frames, and drops it, in one
script. A process that finds itself dropped (its loop stalled past ``ttl``) adds its
counts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT

from tidings import frames
from tidings.errors import TidingsError, Unavailable
from tidings.tasks import BackgroundTasks

log = logging.getLogger("tidings.presence")

MAX_ROOM_USERS = 1_000
"""Most users a ``presence`` frame or ``GET /topics/{topic}/presence`` lists."""
MAX_PENDING = 100_000
GATHER = 0.01
"""Seconds the opens and closes of a burst gather before one write (a join that
someone awaits is written at once)."""
"""Distinct queued changes before new ones are dropped (the store is unreachable)."""

Change = tuple[str | None, str, int]
"""(topic or None for "online", user, delta)."""


def presence_channel(topic: str) -> str:
    return f"pr:{topic}"


def join_frame(topic: str, user: str) -> bytes:
    return frames.encode({"type": "join", "topic": topic, "user": user})


def leave_frame(topic: str, user: str) -> bytes:
    return frames.encode({"type": "leave", "topic": topic, "user": user})


def room_frame(topic: str, users: list[str]) -> bytes:
    return frames.encode({"type": "presence", "topic": topic, "users": users})


class PresenceStore(Protocol):
    async def apply(self, process: str, changes: Sequence[Change]) -> None:
        """Add this process's deltas; publish ``join``/``leave`` on cluster-wide 0 <-> 1."""

    async def renew(self, process: str, ttl: float) -> bool:
        """Keep this process alive for ``ttl`` s; False if it was unknown (dropped)."""

    async def reap(self) -> int:
        """Drop the counts of processes past their expiry; how many were dropped."""

    async def forget(self, process: str) -> None: ...

    async def users(self, topic: str) -> list[str]: ...

    async def connections(self, user: str) -> int: ...

    async def close(self) -> None: ...


class MemoryPresence:
    """One process: counts in dictionaries, frames through the (memory) broker."""

    def __init__(self, publish: Callable[[str, bytes], Awaitable[None]]) -> None:
        self._publish = publish
        self._rooms: dict[str, dict[str, int]] = {}
        self._online: dict[str, int] = {}

    async def apply(self, process: str, changes: Sequence[Change]) -> None:
        for topic, user, delta in changes:
            counts = self._online if topic is None else self._rooms.setdefault(topic, {})
            before = counts.get(user, 0)
            after = max(before + delta, 0)
            if after:
                counts[user] = after
            else:
                counts.pop(user, None)
                if topic is not None and not counts:
                    self._rooms.pop(topic, None)
            if topic is not None and (before == 0) != (after == 0):
                frame = join_frame(topic, user) if after else leave_frame(topic, user)
                await self._publish(presence_channel(topic), frame)

    async def renew(self, process: str, ttl: float) -> bool:
        return True

    async def reap(self) -> int:
        return 0

    async def forget(self, process: str) -> None:
        return None

    async def users(self, topic: str) -> list[str]:
        return sorted(self._rooms.get(topic, {}))[:MAX_ROOM_USERS]

    async def connections(self, user: str) -> int:
        return self._online.get(user, 0)

    async def close(self) -> None:
        return None


APPLY = """
local d = tonumber(ARGV[3])
local mine = redis.call('HINCRBY', KEYS[1], ARGV[1], d)
if mine <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  d = d - mine
end
if d == 0 then return 0 end
local total = redis.call('HINCRBY', KEYS[2], ARGV[2], d)
if total <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
if ARGV[4] ~= '' then
  if d > 0 and total == d then redis.call('PUBLISH', ARGV[4], ARGV[5])
  elseif d < 0 and total <= 0 then redis.call('PUBLISH', ARGV[4], ARGV[6]) end
end
return total
"""

REAP = """
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if expiry and tonumber(expiry) > tonumber(ARGV[3]) then return 0 end
local fields = redis.call('HGETALL', KEYS[2])
for i = 1, #fields, 2 do
  local f, n = fields[i], tonumber(fields[i + 1])
  local kind, rest = string.sub(f, 1, 1), string.sub(f, 3)
  if kind == 'u' then
    if redis.call('HINCRBY', ARGV[2] .. 'online', rest, -n) <= 0 then
      redis.call('HDEL', ARGV[2] .. 'online', rest)
    end
  else
    local cut = string.find(rest, '\\0', 1, true)
    local topic, user = string.sub(rest, 1, cut - 1), string.sub(rest, cut + 1)
    local room = ARGV[2] .. 'room:' .. topic
    if redis.call('HINCRBY', room, user, -n) <= 0 then
      redis.call('HDEL', room, user)
      redis.call('PUBLISH', ARGV[2] .. 'pr:' .. topic,
        '{"type":"leave","topic":"' .. topic .. '","user":' .. cjson.encode(user) .. '}')
    end
  end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""


class RedisPresence:
    """Counts in hashes under the broker's prefix; see the module docstring."""

    def __init__(self, url: str, *, prefix: str) -> None:
        # A bounded pool that makes callers wait their turn: a burst of subscribes must
        # queue for a connection, not fail with "Too many connections".
        pool = BlockingConnectionPool.from_url(
            url, max_connections=32, timeout=5.0, socket_connect_timeout=2.0, socket_timeout=2.0
        )
        self._client = Redis(connection_pool=pool)
        self._prefix = prefix
        self._processes = f"{prefix}presence:processes"
        self._apply = self._client.register_script(APPLY)
        self._reap = self._client.register_script(REAP)

    def _mine(self, process: str) -> str:
        return f"{self._prefix}presence:process:{process}"

    async def apply(self, process: str, changes: Sequence[Change]) -> None:
        mine = self._mine(process)
        async with self._client.pipeline(transaction=False) as pipe:
            for topic, user, delta in changes:
                args: list[EncodableT]
                if topic is None:
                    keys = [mine, f"{self._prefix}online"]
                    args = [f"u\0{user}", user, delta, "", "", ""]
                else:
                    keys = [mine, f"{self._prefix}room:{topic}"]
                    channel = self._prefix + presence_channel(topic)
                    args = [f"r\0{topic}\0{user}", user, delta, channel,
                            join_frame(topic, user), leave_frame(topic, user)]  # fmt: skip
                await self._apply(keys=keys, args=args, client=pipe)
            await _translated(pipe.execute())

    async def renew(self, process: str, ttl: float) -> bool:
        added = await _translated(self._client.zadd(self._processes, {process: time.time() + ttl}))
        return not added

    async def reap(self) -> int:
        now = time.time()
        dead = await _translated(self._client.zrangebyscore(self._processes, "-inf", now))
        for raw in dead:
            name = raw.decode()
            await _translated(
                self._reap(keys=[self._processes, self._mine(name)], args=[name, self._prefix, now])
            )
        return len(dead)

    async def forget(self, process: str) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zadd(self._processes, {process: 0})
            await _translated(pipe.execute())
        await self.reap()

    async def users(self, topic: str) -> list[str]:
        names = await _translated(self._client.hkeys(f"{self._prefix}room:{topic}"))
        return sorted(n.decode() for n in names)[:MAX_ROOM_USERS]

    async def connections(self, user: str) -> int:
        value = await _translated(self._client.hget(f"{self._prefix}online", user))
        return int(value or 0)

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._client.aclose()
            await self._client.connection_pool.disconnect()


async def _translated(awaitable: Awaitable[Any]) -> Any:
    try:
        return await awaitable
    except (RedisError, OSError, TimeoutError) as exc:
        raise Unavailable(f"presence unavailable: {exc}") from None


class Presence:
    """This process's side: local counts, the queue of changes, renewal and reaping."""

    def __init__(self, store: PresenceStore, *, process: str, ttl: float) -> None:
        self.store = store
        self.process = process
        self.ttl = ttl
        self._pending: dict[tuple[str | None, str], int] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._applied: dict[tuple[str | None, str], int] = {}
        """What the store holds for this process, to add again if it dropped us."""
        self._wake = asyncio.Event()
        self._tasks = BackgroundTasks()

    async def start(self) -> None:
        await self._renew()
        self._tasks.start(self._run_forever(), name="tidings-presence")

    def alive(self) -> dict[str, bool]:
        return self._tasks.alive()

    async def stop(self) -> None:
        await self._tasks.stop()
        with contextlib.suppress(TidingsError):
            await self._flush()
            await self.store.forget(self.process)
        await self.store.close()

    # -- changes (never await) -----------------------------------------------------------

    def opened(self, user: str) -> None:
        self._change(None, user, 1)

    def closed(self, user: str) -> None:
        self._change(None, user, -1)

    def leave(self, topic: str, user: str) -> None:
        self._change(topic, user, -1)

    async def join(self, topic: str, user: str) -> None:
        """Count ``user`` in ``topic``'s room; returns once the store has it."""
        self._change(topic, user, 1)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def _change(self, topic: str | None, user: str, delta: int) -> None:
        key = (topic, user)
        if key not in self._pending and len(self._pending) >= MAX_PENDING:
            log.warning("presence backlog full: a change of %s dropped", user)
            return
        total = self._pending.get(key, 0) + delta
        if total:
            self._pending[key] = total
        else:
            self._pending.pop(key, None)
        self._wake.set()

    # -- the task ------------------------------------------------------------------------

    async def _run_forever(self) -> None:
        every = self.ttl / 3
        due = time.monotonic() + every
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(due - time.monotonic(), 0)):
                    await self._wake.wait()
            self._wake.clear()
            if not self._waiters:
                await asyncio.sleep(GATHER)
            try:
                await self._flush()
                if time.monotonic() >= due:
                    due = time.monotonic() + every
                    await self._renew()
                    await self.store.reap()
            except TidingsError as exc:
                log.warning("presence not updated (%s); retrying", exc)
                await asyncio.sleep(min(every, 1.0))
            except Exception:
                log.exception("presence update failed")
                await asyncio.sleep(min(every, 1.0))

    async def _flush(self) -> None:
        changes, self._pending = self._pending, {}
        waiters, self._waiters = self._waiters, []
        try:
            if changes:
                await self.store.apply(self.process, [(t, u, d) for (t, u), d in changes.items()])
        except BaseException:
            for key, delta in changes.items():  # keep them for the next try
                self._pending[key] = self._pending.get(key, 0) + delta
            self._waiters[:0] = waiters
            raise
        for key, delta in changes.items():
            total = self._applied.get(key, 0) + delta
            if total > 0:
                self._applied[key] = total
            else:
                self._applied.pop(key, None)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _renew(self) -> None:
        known = await self.store.renew(self.process, self.ttl)
        if not known and self._applied:
            # Dropped while stalled: changes applied since may sit in a fresh share of
            # ours, so clear that share before adding back everything we hold.
            log.warning("presence of this process had expired; adding it again")
            await self.store.forget(self.process)
            await self.store.renew(self.process, self.ttl)
            await self.store.apply(self.process, [(t, u, d) for (t, u), d in self._applied.items()])

    # -- reads ---------------------------------------------------------------------------

    async def users(self, topic: str, *, reap: bool = True) -> list[str]:
        """Who is in the room; ``reap`` first drops processes past their expiry (backend
        reads do; a subscribe's snapshot leaves that to the background task)."""
        if reap:
            await self.store.reap()
        return await self.store.users(topic)

    async def connections(self, user: str) -> int:
        await self.store.reap()
        return await self.store.connections(user)


def create_presence(
    broker_url: str, *, prefix: str, publish: Callable[[str, bytes], Awaitable[None]]
) -> PresenceStore:
    if broker_url.startswith("redis"):
        return RedisPresence(broker_url, prefix=prefix)
    return MemoryPresence(publish)
