"""Topics as rooms: subscribing with replay and presence, and client publishing.

Shared by every transport (the WebSocket session, SSE, the REST publish route): they
parse the request, this module does the rest, with the hub, the broker's history and
the presence tracker.

Replay without gap or duplicate (like notifications on resume, see docs/DESIGN.md): the
connection is *held* (live frames buffered), subscribed on the hub (the broker confirms
the channel), then each topic's history is read. Every message appended after that
read arrives live; every one appended before is in the read, so the replay goes out
first and the held copies at or below the newest id read are dropped, now and later
(``TopicState.marks``). A history read is one atomic step per topic (Redis
``MULTI``), and appending is atomic with publishing, so ids are in the same order on
both paths.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from tidings import topics
from tidings.coalesce import TopicState, batch_frame
from tidings.errors import RateLimited, TooLarge, Unavailable, ValidationFailed
from tidings.presence import Presence, presence_channel, room_frame
from tidings.protocol import Budgets, Subscribe
from tidings.topics import MessageId

if TYPE_CHECKING:
    from tidings.app import App
    from tidings.connection import Connection
    from tidings.models import Principal

log = logging.getLogger("tidings.rooms")

MAX_TOPICS = 64
"""Topics and globs one connection may subscribe to at once."""
FUTURE_SKEW_MS = 1_000
JOIN_TIMEOUT = 5.0


@dataclass(slots=True)
class Replay:
    frames: list[bytes]
    marks: dict[str, MessageId]
    truncated: bool


class Rooms:
    """Subscriptions with replay and presence, and client publishes. See the module doc."""

    def __init__(self, app: App, presence: Presence) -> None:
        self.app = app
        self.presence = presence
        settings = app.settings
        self.history_size = settings.topic_history
        self.max_bytes = settings.publish_max_bytes
        self.publishes = Budgets(rate=settings.publish_rate, burst=settings.publish_burst)
        self.flood = max(10, 2 * settings.publish_burst)
        """Refused publishes in a row after which the connection closes with 4008."""
        app.hub.departed = self._departed
        app.hub.arrived = self._arrived

    # -- subscribing --------------------------------------------------------------------

    async def subscribe(self, conn: Connection, request: Subscribe) -> dict[str, Any]:
        """Subscribe ``conn``; the ack's fields. Errors are TidingsErrors (error frames)."""
        for name in request.topics:
            topics.check_subscription(name, conn.principal.topics)
        new = [name for name in request.topics if name not in conn.topics]
        if len(conn.topics) + len(new) > MAX_TOPICS:
            raise ValidationFailed(
                f"at most {MAX_TOPICS} topics per connection", code="too_many_topics"
            )
        since = topics.parse_id(request.since) if request.since is not None else None
        if since is not None and since[0] > time.time() * 1000 + FUTURE_SKEW_MS:
            raise ValidationFailed("`since` is a message id from the future", code="invalid_since")
        if request.batch:
            if conn.rooms is None:
                conn.rooms = TopicState()
            conn.rooms.batches = True
        replaying = since is not None or request.history > 0
        if not (replaying or request.presence):
            for name in request.topics:
                await self.app.hub.subscribe(conn, name, request.filter)
            return {}
        state = conn.rooms
        if state is None:
            state = conn.rooms = TopicState()
        held = conn.holding
        conn.hold()
        rooms: dict[str, set[str]] = {}
        try:
            for name in request.topics:
                await self.app.hub.subscribe(conn, name, request.filter)
            extra: dict[str, Any] = {}
            if replaying:
                try:
                    replay = await self._replay(request, since)
                except BaseException:
                    for name in new:
                        await self.app.hub.unsubscribe(conn, name)
                    raise
                state.marks.update(replay.marks)
                if len(replay.frames) > 1 and state.batches:  # one write, not one each
                    conn.send(batch_frame(replay.frames))
                else:
                    for frame in replay.frames:
                        conn.send(frame)
                extra = {"replayed": len(replay.frames), "truncated": replay.truncated}
            if request.presence:
                for name in request.topics:
                    users = await self._enter(conn, state, name)
                    rooms[name] = set(users)
                    conn.send(room_frame(name, users))
            return extra
        finally:
            if not held:
                conn.release(lambda frame: _revised(state, rooms, frame))

    async def unsubscribe(self, conn: Connection, name: str) -> bool:
        found = await self.app.hub.unsubscribe(conn, name)
        state = conn.rooms
        if state is not None and state.presence and name in state.presence:
            state.presence.discard(name)
            self.presence.leave(name, conn.user)
            await self.app.hub.part(conn, presence_channel(name))
        return found

    async def _replay(self, request: Subscribe, since: MessageId | None) -> Replay:
        count = min(request.history, self.history_size)
        flt = request.filter
        frames: list[tuple[MessageId, bytes]] = []
        marks: dict[str, MessageId] = {}
        truncated = False
        seen: set[str] = set()
        for name in request.topics:
            concrete = (
                await self._broker_call(self.app.broker.topics(name))
                if topics.is_pattern(name)
                else [name]
            )
            for topic in concrete:
                if topic in seen:
                    continue
                seen.add(topic)
                found = await self._broker_call(
                    self.app.broker.history(topic, count=count, since=since)
                )
                if found.newest is not None:
                    marks[topic] = found.newest
                if since is not None and not topics.is_pattern(name):
                    truncated |= _check_since(topic, since, found)
                items = found.frames
                if since is not None and len(items) > self.history_size:
                    items, truncated = items[-self.history_size :], True
                for frame in items:
                    parsed = topics.frame_id(frame)
                    if parsed is None:
                        continue
                    if flt is not None and not flt.matches(_data(frame)):
                        continue
                    frames.append((parsed[1], frame))
        frames.sort(key=lambda item: item[0])
        if since is None and len(frames) > count:
            frames = frames[-count:]
        return Replay([frame for _, frame in frames], marks, truncated)

    async def _broker_call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except Unavailable:
            raise
        except Exception as exc:  # a broker bug must not become a 500 or a dead socket
            log.exception("topic history read failed")
            raise Unavailable(f"topic history unavailable: {exc}") from None

    # -- presence -----------------------------------------------------------------------

    async def _enter(self, conn: Connection, state: TopicState, topic: str) -> list[str]:
        """Count ``conn`` in the room (once), watch its join/leave frames; who is there."""
        if state.presence is None:
            state.presence = set()
        if topic not in state.presence:
            await self.app.hub.join(conn, presence_channel(topic))
            state.presence.add(topic)
            try:
                await asyncio.wait_for(self.presence.join(topic, conn.user), JOIN_TIMEOUT)
            except TimeoutError:
                raise Unavailable("presence is unavailable right now") from None
        return await self.presence.users(topic, reap=False)

    async def users(self, topic: str) -> list[str]:
        return await self.presence.users(topic)

    async def online(self, user: str) -> dict[str, Any]:
        connections = await self.presence.connections(user)
        return {"online": connections > 0, "connections": connections}

    def _departed(self, conn: Connection) -> None:
        state = conn.rooms
        for topic in (state.presence if state is not None else None) or ():
            self.presence.leave(topic, conn.user)

    def _arrived(self, conn: Connection, delta: int) -> None:
        if delta > 0:
            self.presence.opened(conn.user)
        else:
            self.presence.closed(conn.user)

    # -- publishing ---------------------------------------------------------------------

    async def publish(self, principal: Principal, topic: str, data: Any) -> None:
        """A client's message: allowed by its ``publish`` claim, within size and rate."""
        topics.check_publish(topic, principal.publish)
        size = len(orjson.dumps(data))
        if size > self.max_bytes:
            raise TooLarge(f"`data` is {size} bytes; at most {self.max_bytes}")
        wait = self.publishes.take(principal.user)
        if wait:
            raise RateLimited("publishing too fast; slow down", retry_after=wait)
        await self.app.service.publish_topic(topic, data, user=principal.user)

    def refused(self, conn: Connection, exc: Exception) -> bool:
        """Count a refused publish; True when the connection floods (close it with 4008)."""
        state = conn.rooms
        if state is None:
            state = conn.rooms = TopicState()
        if not isinstance(exc, RateLimited):
            return False
        state.strikes += 1
        return state.strikes > self.flood

    def published(self, conn: Connection) -> None:
        if conn.rooms is not None:
            conn.rooms.strikes = 0


def _check_since(topic: str, since: MessageId, found: Any) -> bool:
    """Whether the replay after ``since`` may miss messages (trimmed); raise if ``since``
    cannot be one of this topic's messages."""
    if found.newest is None or since < found.oldest:
        return True
    if since > found.newest or not found.since_found:
        raise ValidationFailed(f"`since` is not a message of topic {topic}", code="unknown_since")
    return False


def _revised(state: TopicState, rooms: dict[str, set[str]], frame: bytes) -> bytes | None:
    """A frame held during a subscribe, without what went out already: messages replayed
    (alone or in a batch), or a join/leave the presence snapshot already reflects."""
    parsed = topics.frame_id(frame)
    if parsed is not None:
        return None if state.seen(*parsed) else frame
    if frame.startswith(b'{"type":"batch"') and state.marks:
        batch = orjson.loads(frame)
        kept = [
            m
            for m in batch["messages"]
            if not (isinstance(m.get("id"), str) and _seen(state, m["topic"], m["id"]))
        ]
        if len(kept) == len(batch["messages"]):
            return frame
        return batch_frame([orjson.dumps(m) for m in kept], batch["skipped"]) if kept else None
    if rooms and frame.startswith((b'{"type":"join"', b'{"type":"leave"')):
        change = orjson.loads(frame)
        users = rooms.get(change.get("topic"))
        if users is not None and (change["type"] == "join") == (change.get("user") in users):
            return None
    return frame


def _seen(state: TopicState, topic: str, message_id: str) -> bool:
    parsed = topics.parse_id(message_id)
    return parsed is not None and state.seen(topic, parsed)


def _data(frame: bytes) -> Any:
    try:
        return orjson.loads(frame).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        return None
