"""Topic history: the last messages of each topic, kept where the broker keeps its state.

Appending mints the message id (``<ms>-<seq>``, see :mod:`tidings.topics`), stores the
message and publishes its frame on the topic's channel in one step, so a topic's
history and its live stream have the same order: a subscriber that replays up to id
*x* and then takes live messages above *x* misses nothing and sees nothing twice.

:class:`MemoryHistory` serves the memory broker (one process); the Redis broker keeps
one Stream per topic, trimmed to about ``size`` entries (``MAXLEN ~``) and expiring
after ``ttl`` seconds without a message, so every process shares one history
(:mod:`tidings.broker.redis_history`).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from tidings import topics
from tidings.topics import MessageId

MAX_TOPICS = 10_000
"""Topics whose history one process keeps in memory; the least recently used go first."""
MAX_MATCHING = 1_000
"""Most topics one glob's replay reads."""


@dataclass(slots=True)
class History:
    """What a topic holds, for one replay request."""

    frames: list[bytes] = field(default_factory=list)
    """Oldest first: the messages after ``since``, or the last ``count``."""
    oldest: MessageId | None = None
    newest: MessageId | None = None
    """The newest message id of the topic (None if it has none)."""
    since_found: bool = False
    """Whether the ``since`` message is still retained (so nothing after it was trimmed)."""


class MemoryHistory:
    """Per-topic ring buffers of ``size`` frames, for the memory broker."""

    def __init__(self, size: int, *, clock: object = time.time) -> None:
        self.size = size
        self._clock = clock
        self._last: MessageId = (0, 0)
        self._topics: OrderedDict[str, deque[tuple[MessageId, bytes]]] = OrderedDict()

    def append(self, topic: str, rest: bytes) -> bytes:
        """Mint the next id, keep the message, and return its frame."""
        now = int(self._clock() * 1000)  # type: ignore[operator]
        last = self._last
        self._last = minted = (now, 0) if now > last[0] else (last[0], last[1] + 1)
        encoded = topics.frame(topic, topics.format_id(minted), rest)
        if self.size:
            ring = self._topics.get(topic)
            if ring is None:
                ring = self._topics[topic] = deque(maxlen=self.size)
                if len(self._topics) > MAX_TOPICS:
                    self._topics.popitem(last=False)
            else:
                self._topics.move_to_end(topic)
            ring.append((minted, encoded))
        return encoded

    def read(self, topic: str, *, count: int, since: MessageId | None) -> History:
        ring = self._topics.get(topic)
        if not ring:
            return History()
        found = History(oldest=ring[0][0], newest=ring[-1][0])
        if since is None:
            found.frames = [frame for _, frame in list(ring)[-count:]] if count else []
            return found
        found.since_found = any(mid == since for mid, _ in ring)
        found.frames = [frame for mid, frame in ring if mid > since]
        return found

    def matching(self, pattern: str) -> list[str]:
        return [t for t in self._topics if topics.matches(t, pattern)][:MAX_MATCHING]
