"""The registry of live connections in this process, and fan-out to them.

Connections are indexed by id, by user, and by channel: audience keys (``u:<user>``,
``r:<role>``, ``*``) and topic channels (``t:<topic>``). User and topic channels are
subscribed on the broker once per process while any local connection needs them
(reference counted): they carry read-state frames and topic messages. Notifications do
not travel through the broker: the :class:`~tidings.feed.Feed` hands them to
:meth:`Hub.deliver` in id order.

Both fan-outs encode once and offer the same bytes to every local connection without
awaiting any of them. Fan-outs larger than ``fanout_slice`` (``TOPIC_SLICE`` for topic
messages) continue in slices that yield to the event loop. Notifications keep one
global order (a later one waits behind a broadcast still in slices), so every
connection sees them in id order; broker events keep their order per channel, and a
read-state frame to one user is not stuck behind a broadcast to ten thousand. The hub
does no database or Redis I/O of its own.

Guarantees, in short. Notifications reach a connection exactly once and in id order:
live from the feed, and through a replay from the store on resume (``?after=``); the
connection drops any id at or below the last one it delivered. Read-state frames and
topic messages are at most once (the welcome carries the unread count again).
Backpressure is a policy, not a wait: a full outbox closes the connection with 4010
and the client resumes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tidings import frames, telemetry, topics
from tidings.broker.base import Broker
from tidings.coalesce import Budget, TopicState, batch_frame
from tidings.connection import Connection, Tally
from tidings.errors import RateLimited
from tidings.frames import ChangeFrames, NotificationFrames
from tidings.models import Notification, Principal, topic_channel, user_key
from tidings.preferences import Preferences, from_public
from tidings.presence import presence_channel
from tidings.protocol import TopicFilter

log = logging.getLogger("tidings.hub")

_TOPIC_PREFIX = "t:"
_NOTIFICATIONS = "\0notifications"
"""Backlog key of the notification fan-out (not a channel name: those never hold NUL)."""


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
    variants: NotificationFrames | None = None
    """Set when readers may need another frame than ``frame``: locales, preferences."""
    change: ChangeFrames | None = None
    """Set for a change from the log: each connection's frame depends on its watermark."""
    patterns: tuple[str, ...] = ()
    """Globs of local subscriptions that match ``topic``."""
    messages: list[bytes] | None = None
    """Topic jobs: the message frames that ``frame`` carries (one, or a batch)."""
    _by_filter: dict[tuple[TopicFilter | None, ...], tuple[list[bytes], bytes]] | None = None
    _data: list[Any] | None = None

    def filtered(self, filters: tuple[TopicFilter | None, ...]) -> tuple[list[bytes], bytes]:
        """The messages passing any of ``filters``, and their frame (cached per filters)."""
        cache = self._by_filter
        if cache is None:
            cache = self._by_filter = {}
        found = cache.get(filters)
        if found is None:
            assert self.messages is not None
            if self._data is None:
                self._data = [_message_data(m) for m in self.messages]
            kept = [
                m
                for m, data in zip(self.messages, self._data, strict=True)
                if any(f.matches(data) for f in filters if f is not None)
            ]
            if len(kept) == len(self.messages):
                found = (kept, self.frame)
            else:
                found = (kept, kept[0] if len(kept) == 1 else batch_frame(kept) if kept else b"")
            cache[filters] = found
        return found


class Hub:
    """Live connections of this process. See the module docstring."""

    def __init__(
        self,
        *,
        broker: Broker,
        outbox_size: int,
        fanout_slice: int = 500,
        budget: Budget | None = None,
    ) -> None:
        if fanout_slice < 1:
            raise ValueError("fanout_slice must be at least 1")
        self.budget = budget or Budget(rate=2000.0, batch=100)
        """Topic messages per connection before they are coalesced (see coalesce)."""
        self._patterns: set[str] = set()
        """Globs some local connection subscribed to."""
        self._lingering: dict[str, list[bytes]] = {}
        """Busy topics: messages gathered for one fan-out (see ``_dispatch_topic``)."""
        self._resting: dict[str, float] = {}
        """Until when (``perf_counter``) each topic that fanned out recently gathers."""
        self._batched: dict[str, Connection] = {}
        """Connections with topic messages waiting for the next batch."""
        self.departed: Callable[[Connection], None] | None = None
        """Told of each connection unregistered that used rooms (presence leaves)."""
        self.arrived: Callable[[Connection, int], None] | None = None
        """Told of each connection registered (+1) and unregistered (-1): who is online."""
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
        self._with_preferences: set[str] = set()
        """Connections holding preferences: notifications then take the slower path."""
        self.slow_consumers = 0
        self._tallies: dict[str, Tally] = {}
        """Notifications handed to connections, by transport (see :meth:`deliveries`)."""
        self.generation = 0
        """Bumped whenever a connection registers or leaves: whether the set changed."""
        self._open: dict[str, int] = {}
        """Registered connections by transport: figures exported every few seconds must
        not walk every connection."""

    # -- registry ---------------------------------------------------------------------

    def connection(
        self, principal: Principal, *, after: str | None = None, transport: str = "ws"
    ) -> Connection:
        """A new connection with this hub's outbox size (not yet registered)."""
        tally = self._tallies.get(transport)
        if tally is None:
            tally = self._tallies[transport] = Tally()
        return Connection(
            principal,
            outbox_size=self.outbox_size,
            after=after,
            transport=transport,
            on_slow=self._count_slow_consumer,
            tally=tally,
        )

    def _count_slow_consumer(self) -> None:
        """Called once per connection closed as a slow consumer, however it was found
        behind: a full outbox or write buffer, frames during replay, a stalled reader."""
        self.slow_consumers += 1
        telemetry.SLOW_CONSUMERS.inc()

    def register(self, conn: Connection, *, hold: bool = True, limit: int | None = None) -> None:
        """Index ``conn``, refusing it if its user already has ``limit`` connections.

        Check and insert happen with no await between them, so concurrent opens cannot
        overshoot the cap; a connection counts until :meth:`unregister`. Then
        :meth:`ready` waits for the broker. With ``hold`` (the default) live frames are
        buffered until ``conn.release()``, so the transport can send welcome and replay
        first.
        """
        if conn.id in self._connections:
            raise RuntimeError(f"connection {conn.id} is already registered")
        mine = self._by_user.get(conn.user, {})
        if limit is not None and len(mine) >= limit:
            raise RateLimited("too many connections for this user", code="too_many_connections")
        if hold:
            conn.hold()
        self._connections[conn.id] = conn
        self.generation += 1
        self._open[conn.transport] = self._open.get(conn.transport, 0) + 1
        self._by_user[conn.user] = mine
        mine[conn.id] = conn
        for key in conn.principal.audience_keys():
            self._members.setdefault(key, {})[conn.id] = conn
        if conn.preferences is not None:
            self._with_preferences.add(conn.id)
        if self.arrived is not None:
            self.arrived(conn, 1)

    async def ready(self, conn: Connection) -> None:
        """Return once the broker carries ``conn``'s user channel (its read-state frames)."""
        await self._sync(user_key(conn.user))

    def unregister(self, conn: Connection) -> None:
        """Forget ``conn`` now; channels nobody needs any more are dropped in the background.

        Synchronous so that it completes even in a cancelled task. Idempotent.
        """
        if self._connections.pop(conn.id, None) is None:
            return
        self.generation += 1
        self._open[conn.transport] -= 1
        self._with_preferences.discard(conn.id)
        user = self._by_user.get(conn.user, {})
        user.pop(conn.id, None)
        if not user:
            self._by_user.pop(conn.user, None)
        for key in conn.principal.audience_keys():
            self._leave(key, conn)
        channels = [user_key(conn.user), *map(topic_channel, conn.topics)]
        self._batched.pop(conn.id, None)
        if conn.rooms is not None:
            channels += map(presence_channel, conn.rooms.presence or ())
            if self.departed is not None:
                self.departed(conn)
        for channel in channels[1:]:
            self._leave(channel, conn)
        if self.arrived is not None:
            self.arrived(conn, -1)
        self._spawn(self._sync_all(channels))

    async def _sync_all(self, channels: list[str]) -> None:
        for outcome in await asyncio.gather(*map(self._sync, channels), return_exceptions=True):
            if isinstance(outcome, Exception):  # the broker resubscribes what it still holds
                log.warning("dropping a broker subscription failed: %r", outcome)

    async def settled(self) -> None:
        """Wait for background work (unsubscriptions, sliced fan-outs) to finish."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def subscribe(self, conn: Connection, topic: str, flt: TopicFilter | None) -> None:
        """Add ``conn`` to a topic or glob (or replace its filter); returns once subscribed."""
        conn.topics[topic] = flt
        await self.join(conn, topic_channel(topic))

    async def unsubscribe(self, conn: Connection, topic: str) -> bool:
        """Remove ``conn`` from a topic or glob; False if it was not subscribed."""
        if conn.topics.pop(topic, _MISSING) is _MISSING:
            return False
        if conn.rooms is not None:
            conn.rooms.marks.pop(topic, None)
        await self.part(conn, topic_channel(topic))
        return True

    async def join(self, conn: Connection, channel: str) -> None:
        """Add ``conn`` to any event channel (a topic, a glob, a room's presence)."""
        self._members.setdefault(channel, {})[conn.id] = conn
        if topics.is_pattern(channel):
            self._patterns.add(channel[len(_TOPIC_PREFIX) :])
        await self._sync(channel)

    async def part(self, conn: Connection, channel: str) -> None:
        self._leave(channel, conn)
        await self._sync(channel)

    def _leave(self, channel: str, conn: Connection) -> None:
        members = self._members.get(channel)
        if members is not None:
            members.pop(conn.id, None)
            if not members:
                del self._members[channel]
                if topics.is_pattern(channel):
                    self._patterns.discard(channel[len(_TOPIC_PREFIX) :])

    async def _sync(self, channel: str) -> None:
        """Make the broker subscription of ``channel`` match whether anyone needs it."""
        entry = self._locks.setdefault(channel, _ChannelLock())
        entry.users += 1
        try:
            async with entry.lock:
                wanted = channel in self._members
                glob = topics.is_pattern(channel)
                if wanted and channel not in self._subscribed:
                    if glob:
                        await self.broker.subscribe_pattern(channel)
                    else:
                        await self.broker.subscribe(channel)
                    self._subscribed.add(channel)
                elif not wanted and channel in self._subscribed:
                    self._subscribed.discard(channel)
                    if glob:
                        await self.broker.unsubscribe_pattern(channel)
                    else:
                        await self.broker.unsubscribe(channel)
        finally:
            entry.users -= 1
            if entry.users == 0 and self._locks.get(channel) is entry:
                del self._locks[channel]

    # -- queries ----------------------------------------------------------------------

    def connections_for_user(self, user: str) -> list[Connection]:
        return list(self._by_user.get(user, {}).values())

    def live(self) -> list[Connection]:
        """Every registered connection."""
        return list(self._connections.values())

    def deliveries(self) -> dict[str, int]:
        """Notifications handed to connections since start, by transport."""
        return {transport: tally.count for transport, tally in self._tallies.items()}

    def open_by_transport(self) -> dict[str, int]:
        """Registered connections, by transport."""
        return {transport: n for transport, n in self._open.items() if n}

    def stats(self) -> dict[str, int]:
        """Live figures of this process, for ``/metrics`` and ``/api/v1/stats``."""
        return {
            "connections": len(self._connections),
            "users": len(self._by_user),
            "channels": len(self._subscribed),
            "slow_consumers": self.slow_consumers,
            **{f"connections_{name}": n for name, n in self.open_by_transport().items()},
        }

    # -- fan-out ----------------------------------------------------------------------

    def deliver(
        self,
        notification_id: str,
        keys: Sequence[str],
        frame: bytes | None = None,
        item: Notification | None = None,
    ) -> None:
        """The feed's output: offer a notification frame to its local recipients, in order.

        ``frame`` is the notification in its default language; without it, it is encoded
        from ``item``, and only when this process has recipients (every process follows
        every notification). With ``item``, readers whose locale has a variant, and
        connections holding preferences (muted types or categories, do-not-disturb), get
        their own frame, encoded once per variant.
        """
        if len(keys) == 1:
            members = self._members.get(keys[0])
            targets = list(members.values()) if members else []
        else:
            found: dict[str, Connection] = {}
            for key in keys:
                found.update(self._members.get(key, ()))
            targets = list(found.values())
        if not targets:
            return
        if frame is None:
            if item is None:
                raise ValueError("deliver needs the frame or the notification")
            frame = frames.notification(item)
        job = _Fanout(notification_id, frame, targets, None)
        if item is not None and (item.locales or self._with_preferences):
            job.variants = NotificationFrames(item, frame)
        self._enqueue(_NOTIFICATIONS, job)

    def deliver_change(
        self, position: str, keys: Sequence[str], item: Notification, change: str
    ) -> None:
        """The feed's output for a change at log ``position`` (``updated`` or ``retracted``),
        in the same global order as notifications. Each connection gets ``updated`` or
        ``deleted`` if it may hold the item, the item itself if it was never given it
        (see :class:`~tidings.frames.Change`)."""
        found: dict[str, Connection] = {}
        for key in keys:
            found.update(self._members.get(key, ()))
        if found:
            job = _Fanout(position, b"", list(found.values()), None)
            job.change = ChangeFrames(item, change, position)
            self._enqueue(_NOTIFICATIONS, job)

    def dispatch(self, channel: str, frame: bytes) -> None:
        """Broker ``on_message``: offer an event frame to local connections on ``channel``.

        A topic message goes to the topic's subscribers and to those of every matching
        glob, once each (a connection subscribed both ways gets it once).
        """
        if channel.startswith(_TOPIC_PREFIX):
            self._dispatch_topic(channel, frame)
            return
        members = self._members.get(channel)
        if not members:
            return
        if frame.startswith(frames.PREFERENCES_PREFIX):
            self._preferences_changed(members.values(), frame)
        self._enqueue(channel, _Fanout(None, frame, list(members.values()), None))

    def _dispatch_topic(self, channel: str, frame: bytes) -> None:
        """A busy topic gathers, for as long as its fan-outs take, not a fixed time.

        A topic's message goes out at once unless the topic is resting: after a fan-out
        done in one go that took ``d`` seconds, the topic rests ``d / TOPIC_SHARE - d``
        (at most ``TOPIC_REST_MAX``), so its fan-outs use at most ``TOPIC_SHARE`` of the
        event loop; what arrives meanwhile goes out together when the rest ends, as one
        ``batch`` frame, the same bytes for every subscriber sharing a filter. While a
        fan-out in slices is under way, what arrives goes out right after it, all
        together. So a quiet
        topic's message waits for nothing, and a busy topic's batches grow with the
        cost of its fan-out: a topic of 1,000 messages a second to 100 subscribers goes
        out in a few hundred fan-outs a second, to 1,000 in 50-100 (bench.topics).
        """
        pending = self._lingering.get(channel)
        if pending is not None:
            pending.append(frame)
            return
        if channel in self._backlog:
            # Under way in slices: the fan-out that follows it takes everything.
            self._lingering[channel] = [frame]
            return
        until = self._resting.get(channel)
        if until is not None:
            wait = until - time.perf_counter()
            if wait > 0:
                self._lingering[channel] = [frame]
                asyncio.get_running_loop().call_later(wait, self._rest_over, channel)
                return
        self._fan_now(channel, [frame])

    def _rest_over(self, channel: str) -> None:
        if channel in self._backlog:
            return  # the fan-out under way takes them when it ends (see _drain)
        messages = self._lingering.pop(channel, None)
        if messages:
            self._fan_now(channel, messages)

    def _fan_now(self, channel: str, messages: list[bytes]) -> None:
        started = time.perf_counter()
        self._fan_topic(channel, messages)
        if channel in self._backlog:
            return  # in slices: what arrives meanwhile follows it (see _drain)
        ended = time.perf_counter()
        if len(self._resting) >= 1024:
            self._resting = {c: t for c, t in self._resting.items() if t > ended}
        rest = min((ended - started) * (1 / TOPIC_SHARE - 1), TOPIC_REST_MAX)
        self._resting[channel] = ended + rest

    def _fan_topic(self, channel: str, messages: list[bytes]) -> None:
        job = self._topic_job(channel, messages)
        if job is not None:
            # One queue per topic keeps each topic's order behind a fan-out in slices.
            self._enqueue(channel, job)

    def _topic_job(self, channel: str, messages: list[bytes]) -> _Fanout | None:
        topic = channel[len(_TOPIC_PREFIX) :]
        members = self._members.get(channel)
        patterns = tuple(p for p in self._patterns if topics.matches(topic, p))
        found: dict[str, Connection] = dict(members or {})
        for pattern in patterns:
            found.update(self._members.get(_TOPIC_PREFIX + pattern, ()))
        if not found:
            return None
        frame = messages[0] if len(messages) == 1 else batch_frame(messages)
        job = _Fanout(None, frame, list(found.values()), topic, patterns=patterns)
        job.messages = messages
        return job

    def _enqueue(self, channel: str, job: _Fanout) -> None:
        backlog = self._backlog.get(channel)
        if backlog is not None:
            backlog.append(job)  # keep per-channel order behind a fan-out in progress
        elif len(job.targets) <= self._slice(job):
            self._deliver(job, job.targets)
            _delivered(job)
        else:
            self._backlog[channel] = deque([job])
            self._spawn(self._drain(channel))

    def _slice(self, job: _Fanout) -> int:
        """Connections served per turn of the event loop: fewer for a topic, so that its
        publishers' messages on their way in (two turns) wait behind short slices."""
        return min(self.fanout_slice, TOPIC_SLICE) if job.topic is not None else self.fanout_slice

    async def _drain(self, channel: str) -> None:
        backlog = self._backlog[channel]
        try:
            while backlog:
                job = backlog[0]
                size = self._slice(job)
                for start in range(0, len(job.targets), size):
                    self._deliver(job, job.targets[start : start + size])
                    await asyncio.sleep(0)
                _delivered(job)
                backlog.popleft()
                if not backlog and channel in self._lingering:
                    follow = self._topic_job(channel, self._lingering.pop(channel))
                    if follow is not None:
                        backlog.append(follow)
        finally:
            del self._backlog[channel]

    def _deliver(self, job: _Fanout, targets: list[Connection]) -> None:
        if job.change is not None:
            self._deliver_change(job, job.change, targets)
            return
        if job.variants is not None:
            self._deliver_variants(job, job.variants, targets)
            return
        if job.topic is not None:
            self._deliver_topic(job, targets)
            return
        frame, notification_id = job.frame, job.notification_id
        for conn in targets:
            conn.offer(frame, notification_id)

    def _deliver_topic(self, job: _Fanout, targets: list[Connection]) -> None:
        """Filters, replay watermarks and each connection's budget (see coalesce).

        Connections with the same filters share one frame, built once per job.
        """
        topic = job.topic
        assert topic is not None and job.messages is not None
        budget = self.budget
        tick = budget.tick()
        keys = (topic, *job.patterns)
        for conn in targets:
            messages, frame = job.messages, job.frame
            if job.patterns:
                filters = tuple(conn.topics[k] for k in keys if k in conn.topics)
            else:  # the common case: one topic, no glob
                flt = conn.topics.get(topic)
                filters = () if flt is None else (flt,)
            if filters and None not in filters:
                messages, frame = job.filtered(filters)
                if not messages:
                    continue
            state = conn.rooms
            if state is None:
                state = conn.rooms = TopicState()
            elif state.marks and topic in state.marks:
                messages = [m for m in messages if not _replayed(state, topic, m)]
                if not messages:
                    continue
                if len(messages) != len(job.messages):
                    frame = messages[0] if len(messages) == 1 else batch_frame(messages)
            if budget.admit(state, messages, tick):
                if len(messages) == 1 or state.batches:
                    conn.offer(frame, None)
                else:  # a client that did not ask for batch frames: one frame each
                    for message in messages:
                        conn.offer(message, None)
            elif conn.id not in self._batched:
                self._batched[conn.id] = conn
                if len(self._batched) == 1:
                    self._spawn(self._send_batches())

    async def _send_batches(self) -> None:
        """Once a window, the waiting topic messages of each connection as one frame."""
        while self._batched:
            await asyncio.sleep(self.budget.window)
            due, self._batched = self._batched, {}
            for conn in due.values():
                state = conn.rooms
                frame = self.budget.take(state) if state is not None else None
                if frame is not None:
                    conn.offer(frame, None)

    def _deliver_change(
        self, job: _Fanout, change: ChangeFrames, targets: list[Connection]
    ) -> None:
        item = change.item
        for conn in targets:
            prefs = conn.preferences
            if prefs is not None and not item.critical and prefs.mutes(item.type, item.category):
                continue
            conn.offer(change.frame(conn.principal.locale), job.notification_id)

    def _deliver_variants(
        self, job: _Fanout, variants: NotificationFrames, targets: list[Connection]
    ) -> None:
        """Each reader's variant: their locale, skipped if muted, silent during DND.

        Offered variant by variant, so the WebSocket framing of each is built once too
        (:func:`tidings.web.wsdirect.text_frame` reuses the last one).
        """
        item = variants.item
        now_ms = time.time() * 1000
        localized = bool(item.locales)
        groups: dict[int, tuple[bytes, list[Connection]]] = {}
        for conn in targets:
            prefs = conn.preferences
            silent = False
            if prefs is not None:
                if not item.critical and prefs.mutes(item.type, item.category):
                    continue
                silent = prefs.silent(now_ms)
            frame = variants.frame(conn.principal.locale if localized else None, silent)
            groups.setdefault(id(frame), (frame, []))[1].append(conn)
        for frame, readers in groups.values():
            for conn in readers:
                conn.offer(frame, job.notification_id)

    def set_preferences(self, conn: Connection, preferences: Preferences | None) -> None:
        """What ``conn``'s user muted and when they do not want to be disturbed."""
        conn.preferences = preferences
        if preferences is None:
            self._with_preferences.discard(conn.id)
        elif conn.id in self._connections:
            self._with_preferences.add(conn.id)

    def _preferences_changed(self, members: Iterable[Connection], frame: bytes) -> None:
        """A user's preferences frame: their connections filter with the new ones."""
        try:
            value = from_public(orjson.loads(frame)["preferences"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            log.warning("ignoring a malformed preferences frame")
            return
        kept = value if value.matters(time.time() * 1000) else None
        for conn in list(members):
            self.set_preferences(conn, kept)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- whole-process events ---------------------------------------------------------

    def close_all(self, code: int, reason: str = "") -> None:
        """Ask every connection to close with ``code`` (1012 on graceful shutdown)."""
        for conn in list(self._connections.values()):
            conn.close(code, reason)


_MISSING: Any = object()
TOPIC_SHARE = 0.5
"""Share of the event loop one busy topic's fan-outs (done in one go) may use."""
TOPIC_REST_MAX = 0.005
"""Longest rest: a fan-out slowed down by anything else must not hold the next one."""
TOPIC_SLICE = 100
"""Slice of a topic fan-out: at 1,000 subscribers x 1,000 messages/s, p50 28 ms and p99
67 ms with 100, 37-56 ms and 96-109 ms with 500 (bench.topics on a busy machine, 2 runs
each; publishes wait behind slices on their way in)."""


def _replayed(state: TopicState, topic: str, message: bytes) -> bool:
    found = topics.frame_id(message)
    return found is not None and state.seen(topic, found[1])


def _delivered(job: _Fanout) -> None:
    """Once a notification reached every local recipient: its create-to-write latency."""
    if job.notification_id is not None:
        telemetry.observe_fanout(job.notification_id)


def _message_data(frame: bytes) -> Any:
    try:
        return orjson.loads(frame).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        return None
