"""The registry of live connections in this process, and fan-out to them.

Connections are indexed by id, by user, and by channel: audience keys (``u:<user>``,
``r:<role>``, ``*``) and topic channels (``t:<topic>``). A channel is subscribed on the
broker once per process while any local connection needs it (reference counted).

:meth:`Hub.dispatch` is the broker's ``on_message``: it opens the envelope once and
offers the same bytes to every local connection on the channel without awaiting any of
them. Fan-outs larger than ``fanout_slice`` continue in slices that yield to the event
loop, in order per channel, so a message to one user is not stuck behind a broadcast
to ten thousand. The hub does no database or Redis I/O of its own.

Guarantees, in short. Notifications reach a connection exactly once: live through the
broker, and through a replay from the store on resume (``?after=``) or after a broker
outage (:meth:`Hub.resync_all`); the connection de-duplicates the overlap. Per channel,
frames keep publish order; a replay goes out oldest first, before any held live frame.
Read-state frames and topic messages are at most once (the welcome carries the unread
count again). Backpressure is a policy, not a wait: a full outbox closes the
connection with 4010 and the client resumes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from tidings import frames
from tidings.broker.base import Broker
from tidings.connection import Connection
from tidings.errors import CloseCode
from tidings.models import Principal, topic_channel
from tidings.protocol import TopicFilter

_TOPIC_PREFIX = "t:"


@dataclass(slots=True)
class _ChannelLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass(slots=True)
class _Fanout:
    notification_id: str | None
    frame: bytes
    targets: list[Connection]
    topic: str | None


class Hub:
    """Live connections of this process. See the module docstring."""

    def __init__(self, *, broker: Broker, outbox_size: int, fanout_slice: int = 500) -> None:
        if fanout_slice < 1:
            raise ValueError("fanout_slice must be at least 1")
        self.broker = broker
        self.outbox_size = outbox_size
        self.fanout_slice = fanout_slice
        self._connections: dict[str, Connection] = {}
        self._by_user: dict[str, dict[str, Connection]] = {}
        self._members: dict[str, dict[str, Connection]] = {}
        self._subscribed: set[str] = set()
        self._locks: dict[str, _ChannelLock] = {}
        self._backlog: dict[str, deque[_Fanout]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.resync_slots = asyncio.Semaphore(32)
        """Bounds concurrent resync replays (database queries) after a broker outage."""
        self.slow_consumers = 0

    # -- registry ---------------------------------------------------------------------

    def connection(
        self, principal: Principal, *, after: str | None = None, transport: str = "ws"
    ) -> Connection:
        """A new connection with this hub's outbox size (not yet registered)."""
        return Connection(principal, outbox_size=self.outbox_size, after=after, transport=transport)

    async def register(self, conn: Connection, *, hold: bool = True) -> None:
        """Index ``conn`` and subscribe its audience channels; returns once subscribed.

        With ``hold`` (the default) live frames are buffered until ``conn.release()``,
        so the transport can send welcome and replay first.
        """
        if conn.id in self._connections:
            raise RuntimeError(f"connection {conn.id} is already registered")
        if hold:
            conn.hold()
        self._connections[conn.id] = conn
        self._by_user.setdefault(conn.user, {})[conn.id] = conn
        for key in conn.principal.audience_keys():
            self._members.setdefault(key, {})[conn.id] = conn
        await asyncio.gather(*(self._sync(key) for key in conn.principal.audience_keys()))

    async def unregister(self, conn: Connection) -> None:
        """Forget ``conn`` and drop channels no other local connection needs. Idempotent."""
        if self._connections.pop(conn.id, None) is None:
            return
        user = self._by_user.get(conn.user, {})
        user.pop(conn.id, None)
        if not user:
            self._by_user.pop(conn.user, None)
        channels = [*conn.principal.audience_keys(), *map(topic_channel, conn.topics)]
        for channel in channels:
            self._leave(channel, conn)
        await asyncio.gather(*(self._sync(channel) for channel in channels))

    async def subscribe(self, conn: Connection, topic: str, flt: TopicFilter | None) -> None:
        """Add ``conn`` to a topic (or replace its filter); returns once subscribed."""
        conn.topics[topic] = flt
        channel = topic_channel(topic)
        self._members.setdefault(channel, {})[conn.id] = conn
        await self._sync(channel)

    async def unsubscribe(self, conn: Connection, topic: str) -> bool:
        """Remove ``conn`` from a topic; False if it was not subscribed."""
        if conn.topics.pop(topic, _MISSING) is _MISSING:
            return False
        channel = topic_channel(topic)
        self._leave(channel, conn)
        await self._sync(channel)
        return True

    def _leave(self, channel: str, conn: Connection) -> None:
        members = self._members.get(channel)
        if members is not None:
            members.pop(conn.id, None)
            if not members:
                del self._members[channel]

    async def _sync(self, channel: str) -> None:
        """Make the broker subscription of ``channel`` match whether anyone needs it."""
        entry = self._locks.setdefault(channel, _ChannelLock())
        entry.users += 1
        try:
            async with entry.lock:
                wanted = channel in self._members
                if wanted and channel not in self._subscribed:
                    await self.broker.subscribe(channel)
                    self._subscribed.add(channel)
                elif not wanted and channel in self._subscribed:
                    self._subscribed.discard(channel)
                    await self.broker.unsubscribe(channel)
        finally:
            entry.users -= 1
            if entry.users == 0 and self._locks.get(channel) is entry:
                del self._locks[channel]

    # -- queries ----------------------------------------------------------------------

    def connections_for_user(self, user: str) -> list[Connection]:
        return list(self._by_user.get(user, {}).values())

    def stats(self) -> dict[str, int]:
        """Live figures of this process, for ``/metrics`` and ``/api/v1/stats``."""
        by_transport: dict[str, int] = {}
        for conn in self._connections.values():
            by_transport[conn.transport] = by_transport.get(conn.transport, 0) + 1
        return {
            "connections": len(self._connections),
            "users": len(self._by_user),
            "channels": len(self._subscribed),
            "slow_consumers": self.slow_consumers,
            **{f"connections_{name}": n for name, n in by_transport.items()},
        }

    # -- fan-out ----------------------------------------------------------------------

    def dispatch(self, channel: str, payload: bytes) -> None:
        """Broker ``on_message``: offer the envelope's frame to local connections."""
        members = self._members.get(channel)
        if not members:
            return
        notification_id, frame = frames.open_envelope(payload)
        topic = channel[len(_TOPIC_PREFIX) :] if channel.startswith(_TOPIC_PREFIX) else None
        job = _Fanout(notification_id, frame, list(members.values()), topic)
        backlog = self._backlog.get(channel)
        if backlog is not None:
            backlog.append(job)  # keep per-channel order behind a fan-out in progress
        elif len(job.targets) <= self.fanout_slice:
            self._deliver(job, job.targets)
        else:
            self._backlog[channel] = deque([job])
            self._spawn(self._drain(channel))

    async def _drain(self, channel: str) -> None:
        backlog = self._backlog[channel]
        try:
            while backlog:
                job = backlog[0]
                for start in range(0, len(job.targets), self.fanout_slice):
                    self._deliver(job, job.targets[start : start + self.fanout_slice])
                    await asyncio.sleep(0)
                backlog.popleft()
        finally:
            del self._backlog[channel]

    def _deliver(self, job: _Fanout, targets: list[Connection]) -> None:
        data: Any = _MISSING
        for conn in targets:
            if job.topic is not None:
                flt = conn.topics.get(job.topic)
                if flt is not None:
                    if data is _MISSING:
                        data = _message_data(job.frame)
                    if not flt.matches(data):
                        continue
            was_open = not conn.closed
            delivered = conn.offer(job.frame, job.notification_id)
            if not delivered and was_open and conn.close_code == CloseCode.SLOW_CONSUMER:
                self.slow_consumers += 1

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- whole-process events ---------------------------------------------------------

    def resync_all(self) -> None:
        """After a broker reconnect: every connection holds live frames and replays."""
        for conn in list(self._connections.values()):
            conn.request_resync()

    def close_all(self, code: int, reason: str = "") -> None:
        """Ask every connection to close with ``code`` (1012 on graceful shutdown)."""
        for conn in list(self._connections.values()):
            conn.close(code, reason)


_MISSING: Any = object()


def _message_data(frame: bytes) -> Any:
    try:
        return orjson.loads(frame).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        return None
