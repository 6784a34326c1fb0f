"""Redis pub/sub broker: fan-out between processes and machines.

One pub/sub connection per process; each channel is SUBSCRIBEd once however many
local connections need it (the hub reference-counts). A reader task dispatches every
message to ``on_message``.

Redis pub/sub ignores the database number: every client of a server shares one channel
space. Channels are therefore prefixed with ``tidings:<db>:`` (the URL's database
number), so deployments on ``redis://host/0`` and ``redis://host/1`` never see each
other's traffic; an explicit ``prefix`` (``TIDINGS_BROKER_PREFIX``) separates
deployments that share one database.

When the connection is lost, :attr:`RedisBroker.ready` turns False and a supervisor
reconnects with capped exponential backoff, resubscribes everything, waits for Redis
to confirm, then awaits ``on_reconnect()`` so the application can replay what its
clients missed. Publishes that fail meanwhile wait in a bounded queue and are sent,
in order, once this process has resubscribed (so its own subscribers get them; other
processes that come back later rely on the replay, which is why notifications are
replayed from the store and topic messages are at-most-once). Redis exceptions never
escape: callers see :class:`tidings.errors.Unavailable` or nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tidings.broker.base import MessageHandler, ReconnectHandler
from tidings.broker.history import History
from tidings.broker.redis_history import RedisHistory
from tidings.errors import Unavailable
from tidings.topics import MessageId

log = logging.getLogger(__name__)

_PATTERN = "\0p:"
"""Marks a pattern among the awaited confirmations (channel names hold no NUL)."""
_FAILURES = (RedisError, OSError, TimeoutError)
_OUTAGES = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
"""Failures worth waiting out; any other Redis error is a refusal (e.g. NOPERM)."""


def default_prefix(client: Redis) -> str:
    """``tidings:<db>:``, the database number as redis-py parsed it (``/1`` or ``?db=1``)."""
    return f"tidings:{client.connection_pool.connection_kwargs.get('db', 0)}:"


class RedisBroker:
    """See the module docstring. Keyword options exist for tests and tuning."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        max_pending: int = 10_000,
        backoff_initial: float = 0.05,
        backoff_max: float = 5.0,
        confirm_timeout: float = 5.0,
        liveness_interval: float = 10.0,
        history: int = 100,
        history_ttl: float = 86_400.0,
    ) -> None:
        self._client = Redis.from_url(
            url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2.0, socket_timeout=10.0
        )
        self._prefix = prefix if prefix is not None else default_prefix(self._client)
        self._max_pending = max_pending
        self._backoff = (backoff_initial, backoff_max)
        self._confirm_timeout = confirm_timeout
        self._liveness = liveness_interval
        self._channels: set[str] = set()
        self._patterns: set[str] = set()
        self._history = RedisHistory(
            self._client, prefix=self._prefix, size=history, ttl=history_ttl
        )
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._pubsub: PubSub | None = None
        self._ready = False
        self._ready_event = asyncio.Event()
        self._on_message: MessageHandler | None = None
        self._on_reconnect: ReconnectHandler | None = None
        self._pending: deque[tuple[str, bytes]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self.reconnects = 0
        self.outage_seconds = 0.0
        """Seconds spent disconnected after a connection was lost (metrics)."""
        self._down_since: float | None = None

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def prefix(self) -> str:
        """What every key and channel of this deployment starts with."""
        return self._prefix

    # -- lifecycle --------------------------------------------------------------------

    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        """Connect (or keep trying in the background) and start the reader."""
        if self._supervisor is not None:
            raise RuntimeError("broker already started")
        self._on_message = on_message
        self._on_reconnect = on_reconnect
        connected = asyncio.get_running_loop().create_future()
        self._supervisor = asyncio.create_task(self._supervise(connected))
        # Wait briefly for the first connection so `ready` is meaningful right away.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(connected), self._confirm_timeout)

    async def stop(self) -> None:
        tasks = [t for t in (self._supervisor, self._flusher, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._supervisor = self._flusher = None
        self._ready = False
        self._ready_event.clear()
        if self._pending:
            log.warning("broker stopped with %d unsent publishes", len(self._pending))
        await self._close_pubsub()
        with contextlib.suppress(*_FAILURES):
            await self._client.aclose()

    # -- fan-out ----------------------------------------------------------------------

    async def publish(self, channel: str, payload: bytes) -> None:
        """Publish now, or queue in order while Redis is unreachable."""
        if self._pending:  # an outage is being flushed: keep order behind it
            self._queue(channel, payload)
            return
        try:
            await self._client.publish(self._prefix + channel, payload)
        except _OUTAGES as exc:
            log.warning("publish to %s failed (%s); queued for after reconnect", channel, exc)
            self._queue(channel, payload)
        except RedisError as exc:
            raise Unavailable(f"broker refused the publish: {exc}") from None

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish in order with one pipelined round trip; queue them all during an outage.

        A pipeline cut off midway may have sent some of them already: queueing all can
        deliver those twice, which subscribers tolerate (notifications de-duplicate by
        id), while dropping any would lose them.
        """
        if len(messages) == 1:
            await self.publish(*messages[0])
            return
        if not self._pending:
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for channel, payload in messages:
                        pipe.publish(self._prefix + channel, payload)
                    await pipe.execute()
                return
            except _OUTAGES as exc:
                log.warning("pipelined publish failed (%s); queued for after reconnect", exc)
            except RedisError as exc:
                raise Unavailable(f"broker refused the publish: {exc}") from None
        for channel, payload in messages:
            self._queue(channel, payload)

    def _queue(self, channel: str, payload: bytes) -> None:
        if len(self._pending) >= self._max_pending:
            raise Unavailable("broker unreachable and its publish queue is full")
        self._pending.append((channel, payload))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        delay = self._backoff[0]
        while self._pending:
            # Not before our own subscriptions are back, so local subscribers get them too.
            await self._ready_event.wait()
            channel, payload = self._pending[0]
            try:
                await self._client.publish(self._prefix + channel, payload)
            except _OUTAGES:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            except RedisError as exc:
                log.error("dropping a queued publish to %s that Redis refused: %s", channel, exc)
            self._pending.popleft()
            delay = self._backoff[0]

    async def subscribe(self, channel: str) -> None:
        """Subscribe once; returns when Redis confirmed (or the connection is down)."""
        if channel in self._channels:
            return
        self._channels.add(channel)
        pubsub = self._pubsub
        if pubsub is None:
            return  # subscribed by the supervisor on (re)connect
        waiter = self._expect(channel)
        try:
            await pubsub.subscribe(self._prefix + channel)
            await asyncio.wait_for(asyncio.shield(waiter), self._confirm_timeout)
        except (*_FAILURES, TimeoutError) as exc:
            # The reader notices the loss and resubscribes; resync covers the gap.
            log.warning("subscribe %s not confirmed: %s", channel, exc)

    async def unsubscribe(self, channel: str) -> None:
        if channel not in self._channels:
            return
        self._channels.discard(channel)
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(*_FAILURES):
                await pubsub.unsubscribe(self._prefix + channel)

    async def subscribe_pattern(self, pattern: str) -> None:
        """``PSUBSCRIBE`` a glob over channels; each message arrives once however many match."""
        if pattern in self._patterns:
            return
        self._patterns.add(pattern)
        pubsub = self._pubsub
        if pubsub is None:
            return
        waiter = self._expect(_PATTERN + pattern)
        try:
            await pubsub.psubscribe(self._glob_prefix + pattern)
            await asyncio.wait_for(asyncio.shield(waiter), self._confirm_timeout)
        except (*_FAILURES, TimeoutError) as exc:
            log.warning("psubscribe %s not confirmed: %s", pattern, exc)

    async def unsubscribe_pattern(self, pattern: str) -> None:
        if pattern not in self._patterns:
            return
        self._patterns.discard(pattern)
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(*_FAILURES):
                await pubsub.punsubscribe(self._glob_prefix + pattern)

    @property
    def _glob_prefix(self) -> str:
        return "".join("\\" + c if c in "*?[]\\" else c for c in self._prefix)

    # -- topic history ------------------------------------------------------------------

    async def append(self, posts: Sequence[tuple[str, bytes]]) -> None:
        """Append each (topic, tail) to its history and publish its frame (at most once)."""
        try:
            await self._history.append(posts)
        except RedisError as exc:
            raise Unavailable(f"topic messages not published: {exc}") from None
        except (OSError, TimeoutError) as exc:
            raise Unavailable(f"topic messages not published: {exc}") from None

    async def history(self, topic: str, *, count: int, since: MessageId | None) -> History:
        try:
            return await self._history.read(topic, count=count, since=since)
        except (*_FAILURES,) as exc:
            raise Unavailable(f"topic history unavailable: {exc}") from None

    async def topics(self, pattern: str) -> list[str]:
        try:
            return await self._history.matching(pattern)
        except (*_FAILURES,) as exc:
            raise Unavailable(f"topic history unavailable: {exc}") from None

    # -- connection supervision -------------------------------------------------------

    async def _supervise(self, connected: asyncio.Future[None]) -> None:
        delay = self._backoff[0]
        first = True
        while True:
            try:
                pubsub = await self._connect()
            except _FAILURES as exc:
                log.warning("redis broker unreachable (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            delay = self._backoff[0]
            self._spawn(self._confirmed(first, connected))
            first = False
            try:
                await self._read(pubsub)
            except _FAILURES as exc:
                log.warning("redis broker connection lost: %s", exc)
            self._ready = False
            self._down_since = time.monotonic()
            self._ready_event.clear()
            await self._close_pubsub()

    async def _connect(self) -> PubSub:
        pubsub = self._client.pubsub()
        await pubsub.connect()
        channels = sorted(self._channels)
        for channel in channels:
            self._expect(channel)
        patterns = sorted(self._patterns)
        for pattern in patterns:
            self._expect(_PATTERN + pattern)
        if channels:
            await pubsub.subscribe(*(self._prefix + c for c in channels))
        if patterns:
            await pubsub.psubscribe(*(self._glob_prefix + p for p in patterns))
        if not channels and not patterns:
            await pubsub.ping()  # proves the connection before declaring it ready
        self._pubsub = pubsub
        return pubsub

    async def _confirmed(self, first: bool, connected: asyncio.Future[None]) -> None:
        """Once every resubscription is confirmed: ready, then tell the application."""
        waiters = list(self._confirmations.values())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waiters), self._confirm_timeout)
        if self._pubsub is None:
            return
        self._ready = True
        self._ready_event.set()
        if not connected.done():
            connected.set_result(None)
        if not first:
            self.reconnects += 1
            if self._down_since is not None:
                self.outage_seconds += time.monotonic() - self._down_since
                self._down_since = None
            log.info("redis broker reconnected; %d channels resubscribed", len(self._channels))
            if self._on_reconnect is not None:
                try:
                    await self._on_reconnect()
                except Exception:
                    log.exception("on_reconnect failed")

    async def _read(self, pubsub: PubSub) -> None:
        silent = 0
        while True:
            message = await pubsub.get_message(timeout=self._liveness)
            if message is None:
                silent += 1
                if silent >= 3:
                    raise TimeoutError("no answer from redis")
                await pubsub.ping()
                continue
            silent = 0
            self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind not in ("message", "subscribe", "pmessage", "psubscribe"):
            return
        raw = message["channel"]
        text = raw.decode() if isinstance(raw, bytes) else raw
        if kind == "psubscribe":
            channel = _PATTERN + text[len(self._glob_prefix) :]
        else:
            channel = text[len(self._prefix) :]
        if kind in ("subscribe", "psubscribe"):
            waiter = self._confirmations.pop(channel, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif kind == "pmessage" and not self._first_match(channel, message["pattern"]):
            return  # a plain subscription or another pattern delivers it
        elif (kind == "pmessage" or channel in self._channels) and self._on_message is not None:
            try:
                self._on_message(channel, message["data"])
            except Exception:  # a handler bug must not kill the reader
                log.exception("on_message failed for channel %s", channel)

    def _first_match(self, channel: str, pattern: Any) -> bool:
        """Whether this ``pmessage`` is the one copy to deliver (Redis sends one per match)."""
        if channel in self._channels:
            return False
        raw = pattern.decode() if isinstance(pattern, bytes) else pattern
        matching = [p for p in self._patterns if fnmatchcase(channel, p)]
        return bool(matching) and min(matching) == raw[len(self._glob_prefix) :]

    def _expect(self, channel: str) -> asyncio.Future[None]:
        waiter = self._confirmations.get(channel)
        if waiter is None or waiter.done():
            waiter = asyncio.get_running_loop().create_future()
            self._confirmations[channel] = waiter
        return waiter

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        # Nobody should wait for confirmations that will never come on this connection.
        for waiter in self._confirmations.values():
            if not waiter.done():
                waiter.set_result(None)
        self._confirmations.clear()
        if pubsub is not None:
            with contextlib.suppress(*_FAILURES):
                await pubsub.aclose()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
