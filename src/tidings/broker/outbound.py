"""Publishing that never holds up a request: an ordered, bounded queue drained by one task.

Read-state frames and topic messages go to the broker through here. A request that
changed read state returns once the database committed; a slow or hung broker (Redis
stopped with SIGSTOP answers nothing for its socket timeout) delays the frames, never
the request. One task publishes in order, in batches of whatever is queued, so frames
for one user keep their order. Topic messages (channel ``t:<topic>``, payload the frame's
tail) are appended to the topic's history by the broker, which mints their ids.
When the queue is full the publish is refused with
:class:`~tidings.errors.Unavailable` rather than growing memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from tidings.broker.base import Broker
from tidings.errors import TidingsError, Unavailable
from tidings.tasks import BackgroundTasks

log = logging.getLogger("tidings.broker")

BATCH = 256
TOPIC = "t:"


class Outbound:
    def __init__(self, broker: Broker, *, limit: int = 10_000) -> None:
        self.broker = broker
        self.limit = limit
        self.dropped = 0
        self._queue: deque[tuple[str, bytes]] = deque()
        self._ready = asyncio.Event()
        self._tasks = BackgroundTasks()

    async def start(self) -> None:
        self._tasks.start(self._drain_forever(), name="tidings-outbound")

    async def stop(self) -> None:
        await self._tasks.stop()

    def put(self, *messages: tuple[str, bytes]) -> None:
        """Queue (channel, payload) pairs in order; Unavailable if the queue is full."""
        if len(self._queue) + len(messages) > self.limit:
            self.dropped += len(messages)
            raise Unavailable("the broker is not keeping up; try again shortly")
        self._queue.extend(messages)
        self._ready.set()

    async def flush(self) -> None:
        """Publish what is queued now (used when no task runs: tests, CLI)."""
        while self._queue:
            await self._publish_some()

    async def _drain_forever(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                await self._publish_some()

    async def _publish_some(self) -> None:
        batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
        posts = [(channel[2:], rest) for channel, rest in batch if channel.startswith(TOPIC)]
        if posts:
            batch = [item for item in batch if not item[0].startswith(TOPIC)]
        unsent = len(posts) + len(batch)  # a failed append takes the frames behind it along
        try:
            if posts:
                await self.broker.append(posts)
                unsent -= len(posts)
            if batch:
                await self.broker.publish_many(batch)
        except TidingsError as exc:
            self.dropped += unsent
            log.warning("broker unavailable: %d event frames dropped (%s)", unsent, exc)
        except Exception:
            self.dropped += unsent
            log.exception("publishing %d event frames failed", unsent)
