"""Snoozed notifications wake up: pushed back to their user's open connections.

A snooze is the user's receipt ``snoozed_until`` in the store, so it survives restarts
and is seen by every process. Each process looks, every ``interval`` seconds, for snoozes
that ended since it last looked (with a few seconds of overlap, so one committed just
after a look is not missed) and sends the notification, unread, to its own connections
of that user, with the new unread count. No broker is involved: every process reads the
store, so a snooze wakes within about ``interval`` on every process, whichever took the
request. Like read state, the push is at most once: a client not connected at that
moment sees the item in its list, and the count in its next ``welcome``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from tidings import frames, ids
from tidings.errors import TidingsError
from tidings.hub import Hub
from tidings.store import SqlStore
from tidings.tasks import BackgroundTasks

log = logging.getLogger("tidings.snoozes")

OVERLAP_MS = 5_000
"""How far back each look reaches again (a snooze committed just after the last look)."""


class SnoozeWaker:
    def __init__(
        self,
        *,
        store: SqlStore,
        hub: Hub,
        interval: float = 0.5,
        clock: Callable[[], int] = ids.time_ms,
    ) -> None:
        self.store = store
        self.hub = hub
        self.interval = interval
        self.clock = clock
        self.woken = 0
        self._looked = 0
        self._recent: dict[tuple[str, int, int], int] = {}
        self._tasks = BackgroundTasks()

    async def start(self) -> None:
        self._looked = self.clock()
        self._tasks.start(self._run(), name="tidings-snoozes")

    def alive(self) -> dict[str, bool]:
        return self._tasks.alive()

    async def stop(self) -> None:
        await self._tasks.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.wake_due()
            except TidingsError as exc:
                log.warning("could not look for snoozes that ended (%s)", exc)
            except Exception:  # a bug must not stop waking for the whole process
                log.exception("waking snoozed notifications failed")

    async def wake_due(self) -> None:
        """Push every snooze that ended since the last look to this process's connections."""
        now = self.clock()
        due = await self.store.woken(self._looked - OVERLAP_MS, now)
        self._looked = now
        self._recent = {k: at for k, at in self._recent.items() if at > now - 2 * OVERLAP_MS}
        for user, value, until in due:
            if (user, value, until) in self._recent:
                continue
            self._recent[(user, value, until)] = now
            await self._wake(user, value, now)

    async def _wake(self, user: str, value: int, now: int) -> None:
        connections = self.hub.connections_for_user(user)
        if not connections:
            return
        principal = connections[0].principal
        item = await self.store.get(principal, value, now_ms=now)
        if item is None or item.archived_at is not None:
            return  # deleted, muted or archived meanwhile: nothing comes back
        count = frames.unread(await self.store.unread_count(principal, now_ms=now))
        self.woken += 1
        for conn in connections:
            conn.offer(frames.notification(item, conn.principal.locale, woke=True))
            conn.offer(count)
