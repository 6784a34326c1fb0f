"""One live client connection as the hub sees it: a bounded outbox and delivery state.

The hub offers frames without ever awaiting; the transport (WebSocket or SSE pump)
takes them out with :meth:`Connection.next_frame`. A connection whose outbox is full is
closed as a slow consumer rather than allowed to hold memory or delay anyone else.

Notification frames are de-duplicated per connection: one notification can arrive via
``u:alice`` and ``r:admin``, or both live and in a resume replay. While *holding*
(during a resume or resync replay) live frames are buffered, then flushed through the
same de-duplication, so the client sees no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import Callable

from tidings import ids
from tidings.errors import CloseCode
from tidings.models import Principal
from tidings.protocol import TopicFilter

Item = tuple[str | None, bytes]
"""(notification id or None, encoded frame)."""

DEDUP_WINDOW = 1024


class ConnectionClosed(Exception):
    """Raised by :meth:`Connection.next_frame` once the connection is closed."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed ({code}): {reason}")
        self.code = code
        self.reason = reason


class RecentIds:
    """Notification ids a connection has already been given.

    A bounded window of recent ids plus a floor: anything at or below the floor (the
    resume point, or the highest id evicted from the window) counts as seen.
    """

    def __init__(self, *, size: int = DEDUP_WINDOW, floor: str | None = None) -> None:
        self._size = size
        self._order: deque[str] = deque()
        self._seen: set[str] = set()
        self.floor = floor
        self.highest = floor

    def add(self, notification_id: str) -> bool:
        """Record an id; False if it was seen before (the frame must be dropped)."""
        if notification_id in self._seen or (self.floor and notification_id <= self.floor):
            return False
        self._seen.add(notification_id)
        self._order.append(notification_id)
        if len(self._order) > self._size:
            evicted = self._order.popleft()
            self._seen.discard(evicted)
            self.floor = max(self.floor or evicted, evicted)
        if self.highest is None or notification_id > self.highest:
            self.highest = notification_id
        return True


class Connection:
    """A client connection's queue and delivery state. Create, then ``hub.register``."""

    def __init__(
        self,
        principal: Principal,
        *,
        outbox_size: int,
        after: str | None = None,
        transport: str = "ws",
        connection_id: str | None = None,
    ) -> None:
        self.id = connection_id or secrets.token_hex(8)
        self.principal = principal
        self.transport = transport
        self.topics: dict[str, TopicFilter | None] = {}
        self.seen = RecentIds(floor=after)
        # Resync after a broker outage starts from here when nothing was delivered yet.
        self.started_at = ids.encode(ids.floor_for_ms(ids.time_ms()))
        self._limit = outbox_size
        self._outbox: deque[Item] = deque()
        self._held: deque[Item] | None = None
        self._direct: Callable[[bytes], bool] | None = None
        self._ready = asyncio.Event()
        self._resync = asyncio.Event()
        self._closed = asyncio.Event()
        self._closing = False
        self.close_code: int | None = None
        self.close_reason = ""

    @property
    def user(self) -> str:
        return self.principal.user

    @property
    def closed(self) -> bool:
        return self._closing

    @property
    def holding(self) -> bool:
        return self._held is not None

    @property
    def writes_directly(self) -> bool:
        return self._direct is not None

    def resume_point(self) -> str:
        """The id after which this connection may have missed notifications."""
        return self.seen.highest or self.started_at

    # -- producers (never await) ----------------------------------------------------------

    def offer(self, frame: bytes, notification_id: str | None = None) -> bool:
        """Queue a live frame from the hub; False if the connection is (now) closed."""
        if self._closing:
            return False
        if self._held is not None:
            if len(self._held) >= self._limit:
                self.close(CloseCode.SLOW_CONSUMER, "too many frames during replay")
                return False
            self._held.append((notification_id, frame))
            return True
        return self._enqueue(frame, notification_id)

    def send(self, frame: bytes, notification_id: str | None = None) -> bool:
        """Queue a frame from the transport itself: welcome, replay, replies, pings.

        Bypasses holding, so replayed notifications go out before the held live ones.
        """
        if self._closing:
            return False
        return self._enqueue(frame, notification_id)

    def write_directly(self, writer: Callable[[bytes], bool]) -> None:
        """Hand frames straight to ``writer`` instead of queueing them for a writer task.

        ``writer`` must not block; it returns False when the client is too far behind,
        and the connection then closes as a slow consumer.
        """
        self._direct = writer

    def _enqueue(self, frame: bytes, notification_id: str | None) -> bool:
        if notification_id is not None and not self.seen.add(notification_id):
            return True
        if self._direct is not None:
            if self._direct(frame):
                return True
            self.close(CloseCode.SLOW_CONSUMER, "too far behind")
            return False
        if len(self._outbox) >= self._limit:
            self.close(CloseCode.SLOW_CONSUMER, "outbox full")
            return False
        self._outbox.append((notification_id, frame))
        self._ready.set()
        return True

    def hold(self) -> None:
        """Buffer live frames until :meth:`release` (used around a replay)."""
        if self._held is None:
            self._held = deque()

    def release(self) -> None:
        """Stop holding: flush buffered live frames, dropping notifications already sent."""
        held, self._held = self._held, None
        for notification_id, frame in held or ():
            if not self._enqueue(frame, notification_id):
                return

    def close(self, code: int, reason: str = "") -> None:
        """Ask the transport to close with ``code``; idempotent, first code wins."""
        if self._closing:
            return
        self._closing = True
        self.close_code = code
        self.close_reason = reason
        self._outbox.clear()
        self._held = None
        self._ready.set()
        self._resync.set()
        self._closed.set()

    def request_resync(self) -> None:
        """Messages may have been lost (broker outage): hold now, transport replays."""
        if not self._closing:
            self.hold()
            self._resync.set()

    # -- consumers (the transport) --------------------------------------------------------

    async def next_frame(self) -> Item:
        """Wait for the next frame to write; raise :class:`ConnectionClosed` when closed."""
        while not self._outbox:
            if self._closing:
                raise ConnectionClosed(self.close_code, self.close_reason)
            self._ready.clear()
            await self._ready.wait()
        if self._closing:
            raise ConnectionClosed(self.close_code, self.close_reason)
        return self._outbox.popleft()

    async def wait_resync(self) -> None:
        """Return when a resync was requested; raise :class:`ConnectionClosed` if closed."""
        await self._resync.wait()
        self._resync.clear()
        if self._closing:
            raise ConnectionClosed(self.close_code, self.close_reason)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def pending(self) -> int:
        return len(self._outbox)
