"""The delivery log: every process follows the store's commit order and fans it out.

The store mints ids under its write lock, so id order is commit order (see
:mod:`tidings.ids`), and any snapshot of the ``notifications`` table holds a prefix of
that order: a row can only be committed after every row with a smaller id. That makes
the table a log. Each process keeps a **cursor** (the highest id it has fanned out) and
hands every notification above it to the hub exactly once, in id order:

- Batches this process committed are fanned out straight from memory when they follow
  the cursor directly (the common case, and the only case with one process): no read.
- Otherwise (another process committed in between, a wake-up from the broker, or the
  periodic poll) the feed reads the rows above its cursor from the store, oldest first.

Changes after sending (an update, a retraction, a create that replaces by key) take a
new position in the same log, minted under the same write lock as ids: the feed reads
them in log order like new notifications, and hands them to the hub as changes. A
notification changed twice before the feed read it is read once, in its final state.
Positions and ids share one space, so "the highest position" is still "the cursor".

The broker carries only wake-ups (the newest position) between processes. Losing one delays
delivery until the next wake-up or poll, never loses or reorders anything; so a Redis
outage, a hung Redis or a process cut off from Redis cost latency, not correctness.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from tidings import ids
from tidings.errors import TidingsError
from tidings.models import Notification
from tidings.store import CreateOutcome, LogEntry, SqlStore, StoredBatch
from tidings.tasks import BackgroundTasks

log = logging.getLogger("tidings.feed")

FEED_CHANNEL = "feed"
"""Broker channel of wake-ups: the payload is the newest committed id (16 hex digits)."""

READ_BATCH = 500
Deliver = Callable[[str, Sequence[str], None, Notification], None]
"""The hub's ``deliver(notification_id, audience_keys, frame, item)``."""
DeliverChange = Callable[[str, Sequence[str], Notification, str], None]
"""The hub's ``deliver_change(position, audience_keys, item, change)``."""
Announce = Callable[[bytes], Awaitable[None]]


class Feed:
    """Follows the store's log for this process. See the module docstring."""

    def __init__(
        self,
        *,
        store: SqlStore,
        deliver: Deliver,
        deliver_change: DeliverChange | None = None,
        announce: Announce | None = None,
        poll_interval: float = 1.0,
        clock: Callable[[], int] = ids.time_ms,
    ) -> None:
        self.store = store
        self.deliver = deliver
        self.deliver_change = deliver_change
        self.announce = announce
        self.poll_interval = poll_interval
        self.clock = clock
        self.cursor = 0
        self.delivered = 0
        self.reads = 0
        self._local: deque[StoredBatch] = deque()
        self._wanted = 0
        """The newest position another process announced; 0 once read."""
        self._look_again = False
        """A wake-up without a position: read above the cursor, wherever it then is."""
        self._wake = asyncio.Event()
        self._reading = asyncio.Lock()
        self._newest_to_announce = 0
        self._announced = asyncio.Event()
        self._tasks = BackgroundTasks()

    async def start(self) -> None:
        """Start after the newest committed id: earlier ones are for resume to replay."""
        self.cursor = await self.store.last_id()
        self._tasks.start(self._follow(), name="tidings-feed")
        if self.announce is not None:
            self._tasks.start(self._announce(), name="tidings-announce")

    def alive(self) -> dict[str, bool]:
        """Whether each background task of the feed still runs (``/readyz``)."""
        return self._tasks.alive()

    async def stop(self) -> None:
        await self._tasks.stop()

    # -- inputs (never await) ----------------------------------------------------------

    def committed(self, batch: StoredBatch) -> None:
        """A batch this process just committed: fan out now if it follows the cursor."""
        if not batch.outcomes:
            return
        if not self._local and batch.previous <= self.cursor:
            self._fan_out_outcomes(batch.outcomes)
        else:
            self._local.append(batch)
            self._wake.set()
        newest = batch.outcomes[-1].log_position
        if newest > self._newest_to_announce:
            self._newest_to_announce = newest
            self._announced.set()

    def wake(self, newest: bytes | str | None = None) -> None:
        """Another process committed up to ``newest`` (None: look anyway)."""
        if newest is None:
            # Not "above the cursor now": batches of our own may move it on first.
            self._look_again = True
        else:
            text = newest.decode() if isinstance(newest, bytes) else newest
            value = ids.try_decode(text)
            if value is None or value <= self.cursor:
                return
            self._wanted = max(self._wanted, value)
        self._wake.set()

    # -- the follower ------------------------------------------------------------------

    async def _follow(self) -> None:
        failures = 0
        while True:
            polled = False
            try:
                # Not wait_for: on 3.11 it can swallow a cancel that meets the wake-up,
                # and then stop() waits for ever (seen once reads stopped yielding).
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                polled = True
            self._wake.clear()
            try:
                await self.catch_up(poll=polled)
                failures = 0
            except TidingsError as exc:
                failures += 1
                log.warning("feed could not read the store (%s); retrying", exc)
                await asyncio.sleep(min(0.05 * 2**failures, 2.0))
                self._wake.set()
            except Exception:  # a bug must not stop delivery for the whole process
                log.exception("feed failed; retrying")
                await asyncio.sleep(0.5)
                self._wake.set()

    async def catch_up(self, *, poll: bool = True) -> None:
        """Fan out everything committed above the cursor, in id order."""
        async with self._reading:
            more = poll
            while True:
                while self._local and self._local[0].previous <= self.cursor:
                    self._fan_out_outcomes(self._local.popleft().outcomes)
                if self._local:  # other processes committed before our next batch
                    await self._read(until=self._local[0].previous)
                    continue
                if not more and not self._look_again and self._wanted <= self.cursor:
                    return
                self._look_again = False
                more = await self._read() >= READ_BATCH
                if not more:
                    self._wanted = 0
                    return

    async def _read(self, until: int | None = None) -> int:
        entries = await self.store.log_after(self.cursor, limit=READ_BATCH, until=until)
        self.reads += 1
        now = self.clock()
        for entry in entries:
            self._fan_out(entry, now)
        if until is not None and not entries:
            # Nothing between the cursor and our own batch (the sweep took it): move on.
            self.cursor = max(self.cursor, until)
        return len(entries)

    def _fan_out_outcomes(self, outcomes: Sequence[CreateOutcome]) -> None:
        now = self.clock()
        for outcome in outcomes:
            entry = LogEntry(
                outcome.notification, outcome.audience_keys, outcome.log_position, outcome.change
            )
            self._fan_out(entry, now)

    def _fan_out(self, entry: LogEntry, now_ms: int) -> None:
        item, keys = entry.notification, entry.audience_keys
        if entry.position <= self.cursor:
            return
        self.cursor = entry.position
        expired = item.expires_at is not None and item.expires_at.timestamp() * 1000 <= now_ms
        if expired and entry.change != "retracted":
            return
        self.delivered += 1
        try:
            if entry.change is not None:
                if self.deliver_change is not None:
                    position = ids.encode(entry.position)
                    self.deliver_change(position, keys, item, entry.change)
                return
            self.deliver(item.id, keys, None, item)  # encoded only if someone here reads it
        except Exception:  # one bad item must not stop the log
            log.exception(
                "could not deliver notification %s", item.id, extra={"notification": item.id}
            )

    # -- wake-ups for other processes --------------------------------------------------

    async def _announce(self) -> None:
        """Publish the newest committed id; coalesces while a publish is in flight."""
        assert self.announce is not None
        announced = 0
        while True:
            await self._announced.wait()
            self._announced.clear()
            newest = self._newest_to_announce
            if newest <= announced:
                continue
            try:
                await self.announce(ids.encode(newest).encode())
                announced = newest
            except TidingsError as exc:
                log.debug("wake-up not published (%s); others will poll", exc)
            except Exception:
                log.exception("wake-up publish failed; others will poll")
