"""One live client connection as the hub sees it: a bounded outbox and delivery state.

The hub offers frames without ever awaiting; the transport (WebSocket or SSE pump)
takes them out with :meth:`Connection.next_frame`. A connection whose outbox is full is
closed as a slow consumer rather than allowed to hold memory or delay anyone else.

Notifications reach a connection in id order (the feed fans out in commit order and a
replay reads the store oldest first), so one watermark de-duplicates them: a
notification at or below :attr:`Connection.last_id` was delivered already (it arrived
through ``u:alice`` and ``r:admin``, or both by replay and live) and is dropped. While
*holding* (during the resume replay) live frames are buffered, then flushed through the
same watermark, so the client sees no gap, no duplicate and no reordering.

The watermark is a log position: a notification's id, or the position a change to it
took (see :mod:`tidings.feed`). A change is offered as a :class:`~tidings.frames.Change`
and becomes its frame only when it leaves the hold, against the watermark then: a
connection that may hold the notification gets ``updated`` (or ``deleted``), one that
was never given it gets it as a ``notification`` (or nothing, if retracted).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Callable

from tidings.coalesce import TopicState
from tidings.errors import CloseCode
from tidings.frames import Change
from tidings.models import Principal
from tidings.preferences import Preferences
from tidings.protocol import TopicFilter

Item = tuple[str | None, bytes]
"""(log position or None, encoded frame)."""
Writer = Callable[[bytes, str | None], bool]
"""A transport's direct writer: (encoded frame, its log position or None) -> still keeping up."""
Held = tuple[str | None, bytes | Change]


class Tally:
    """Notifications handed to the connections of one transport, shared by all of them:
    what metrics export then costs nothing per connection."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class ConnectionClosed(Exception):
    """Raised by :meth:`Connection.next_frame` once the connection is closed."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed ({code}): {reason}")
        self.code = code
        self.reason = reason


class Connection:
    """A client connection's queue and delivery state. Create, then ``hub.register``."""

    # Slots: a fan-out reads a few fields of thousands of connections once each, so one
    # object with its fields inline (no instance dict) costs fewer cache misses and less
    # memory per idle connection.
    __slots__ = (
        "_closed",
        "_closing",
        "_direct",
        "_held",
        "_limit",
        "_on_close",
        "_on_slow",
        "_outbox",
        "_ready",
        "close_code",
        "close_reason",
        "connected_at",
        "heard_at",
        "id",
        "last_id",
        "preferences",
        "principal",
        "rooms",
        "tally",
        "topics",
        "transport",
        "user_agent",
    )

    def __init__(
        self,
        principal: Principal,
        *,
        outbox_size: int,
        after: str | None = None,
        transport: str = "ws",
        connection_id: str | None = None,
        on_slow: Callable[[], None] | None = None,
        tally: Tally | None = None,
    ) -> None:
        self.id = connection_id or secrets.token_hex(8)
        self.principal = principal
        self.transport = transport
        self.topics: dict[str, TopicFilter | None] = {}
        """Subscribed topic names and globs, each with its filter."""
        self.rooms: TopicState | None = None
        """Replay watermarks, presence and topic budget; made on first use (see coalesce)."""
        self.preferences: Preferences | None = None
        """The user's muted types and categories and do-not-disturb (set by the hub)."""
        self.last_id = after
        """The newest notification id this connection has been given (or resumed after)."""
        self._limit = outbox_size
        self._outbox: deque[Item] | None = None
        self._held: deque[Held] | None = None
        self._direct: Writer | None = None
        self._on_slow = on_slow
        self._on_close: Callable[[], None] | None = None
        # Created when a task first waits: a transport that writes directly never does.
        self._ready: asyncio.Event | None = None
        self._closed: asyncio.Event | None = None
        self._closing = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.connected_at = time.time()
        self.heard_at = 0.0
        """When the client last sent a frame (seconds since the epoch; 0: never)."""
        self.user_agent: str | None = None
        self.tally = tally or Tally()
        """Where notifications handed to this connection are counted (see :class:`Tally`)."""

    @property
    def user(self) -> str:
        return self.principal.user

    @property
    def log_extra(self) -> dict[str, str]:
        """The connection and its user, for a log record's ``extra``."""
        return {"connection": self.id, "user": self.user}

    @property
    def closed(self) -> bool:
        return self._closing

    @property
    def holding(self) -> bool:
        return self._held is not None

    @property
    def writes_directly(self) -> bool:
        return self._direct is not None

    # -- producers (never await) ----------------------------------------------------------

    def offer(
        self, frame: bytes | Change, notification_id: str | None = None, now: bool = False
    ) -> bool:
        """Queue a live frame from the hub; False if the connection is (now) closed.

        While holding, the frame waits for :meth:`release`; ``now`` bypasses holding
        (:meth:`send`, :meth:`release`). Every recipient of every fan-out runs this, so it
        is kept to one flat call down to the transport's writer, measured in instructions
        per delivery (docs/DESIGN.md, "A broadcast against the ceiling"): ``now`` is not
        keyword-only and the type test is ``type(...) is``, because on CPython 3.11 either
        alternative costs more than the rest of this method.
        """
        if self._closing:
            return False
        if self._held is not None and not now:
            if len(self._held) >= self._limit:
                self.close(CloseCode.SLOW_CONSUMER, "too many frames during replay")
                return False
            self._held.append((notification_id, frame))
            return True
        if notification_id is not None:
            last = self.last_id
            if last is not None and notification_id <= last:
                return True  # delivered already
            if type(frame) is Change:
                unseen = last is not None and frame.notification_id > last
                chosen = frame.new if unseen else frame.seen
                self.last_id = notification_id
                if chosen is None:
                    return True
                frame = chosen
            else:
                self.last_id = notification_id
            self.tally.count += 1
        elif type(frame) is Change:
            raise TypeError("a change needs its log position")
        if self._direct is not None:
            if self._direct(frame, notification_id):
                return True
            self.close(CloseCode.SLOW_CONSUMER, "too far behind")
            return False
        if self._outbox is None:
            self._outbox = deque()
        if len(self._outbox) >= self._limit:
            self.close(CloseCode.SLOW_CONSUMER, "outbox full")
            return False
        self._outbox.append((notification_id, frame))
        if self._ready is not None:
            self._ready.set()
        return True

    def send(self, frame: bytes, notification_id: str | None = None) -> bool:
        """Queue a frame from the transport itself: welcome, replay, replies, pings.

        Bypasses holding, so replayed notifications go out before the held live ones.
        """
        return self.offer(frame, notification_id, now=True)

    def write_directly(self, writer: Writer) -> None:
        """Hand frames straight to ``writer`` instead of queueing them for a writer task.

        ``writer`` gets each frame with its log position (SSE sends it as the event id);
        it must not block, and returns False when the client is too far behind: the
        connection then closes as a slow consumer.
        """
        self._direct = writer

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (once, synchronously) when the connection is closed: how a
        transport without a task waiting in :meth:`wait_closed` learns of it."""
        self._on_close = callback

    def hold(self) -> None:
        """Buffer live frames until :meth:`release` (used around a replay)."""
        if self._held is None:
            self._held = deque()

    def drop_held_notifications(self) -> list[str]:
        """Forget the notifications held so far (they will be replayed); their ids."""
        if not self._held:
            return []
        dropped = [nid for nid, _ in self._held if nid is not None]
        self._held = deque(item for item in self._held if item[0] is None)
        return dropped

    def release(self, revise: Callable[[bytes], bytes | None] | None = None) -> None:
        """Stop holding: flush buffered live frames, dropping notifications already sent;
        ``revise`` may drop or rewrite held event frames (topic messages replayed)."""
        held, self._held = self._held, None
        for notification_id, frame in held or ():
            if revise is not None and notification_id is None and isinstance(frame, bytes):
                revised = revise(frame)
                if revised is None:
                    continue
                frame = revised
            if not self.offer(frame, notification_id, now=True):
                return

    def close(self, code: int, reason: str = "") -> None:
        """Ask the transport to close with ``code``; idempotent, first code wins."""
        if self._closing:
            return
        self._closing = True
        self.close_code = code
        self.close_reason = reason
        self._outbox = None
        self._held = None
        if self._ready is not None:
            self._ready.set()
        if self._closed is not None:
            self._closed.set()
        if self._on_close is not None:
            callback, self._on_close = self._on_close, None
            callback()
        if code == CloseCode.SLOW_CONSUMER and self._on_slow is not None:
            self._on_slow()

    # -- consumers (the transport) --------------------------------------------------------

    async def next_frame(self) -> Item:
        """Wait for the next frame to write; raise :class:`ConnectionClosed` when closed."""
        while not self._outbox:
            if self._closing:
                raise ConnectionClosed(self.close_code, self.close_reason)
            if self._ready is None:
                self._ready = asyncio.Event()
            self._ready.clear()
            await self._ready.wait()
        if self._closing:
            raise ConnectionClosed(self.close_code, self.close_reason)
        return self._outbox.popleft()

    async def wait_closed(self) -> None:
        if self._closing:
            return
        if self._closed is None:
            self._closed = asyncio.Event()
        await self._closed.wait()

    def pending(self) -> int:
        return len(self._outbox) if self._outbox is not None else 0
