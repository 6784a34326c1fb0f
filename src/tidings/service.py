"""Create, list, read and delete notifications: the store, then the broker.

Creates are group-committed: concurrent requests queue up and one writer task stores
them in a single transaction, then publishes them in id order. That keeps SQLite's
single writer busy with large transactions instead of many small ones, and keeps
live delivery in the same order as resume replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tidings import frames, ids
from tidings.broker.base import Broker
from tidings.errors import BadRequest, Conflict, NotFound, TidingsError, Unavailable
from tidings.models import (
    NewNotification,
    Notification,
    Page,
    Principal,
    topic_channel,
    user_key,
)
from tidings.store import CreateOutcome, PendingCreate, SqlStore

log = logging.getLogger("tidings.service")

MAX_BATCH = 500
MAX_PAGE = 100


@dataclass(slots=True)
class _Queued:
    pending: PendingCreate
    result: asyncio.Future[CreateOutcome]


class NotificationService:
    def __init__(
        self,
        *,
        store: SqlStore,
        broker: Broker,
        sweep_interval: float = 60.0,
        clock: Callable[[], int] = ids.time_ms,
    ) -> None:
        self.store = store
        self.broker = broker
        self.clock = clock
        self.sweep_interval = sweep_interval
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._write_forever(), name="tidings-writer"),
            asyncio.create_task(self._sweep_forever(), name="tidings-sweeper"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # -- backend side ------------------------------------------------------------------

    async def create(
        self,
        new: NewNotification,
        *,
        api_key: str | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> CreateOutcome:
        """Store and publish a notification; a repeated idempotency key returns the original."""
        if idempotency_key and api_key and request_hash:
            earlier = await self.store.find_idempotent(api_key, idempotency_key, request_hash)
            if earlier is not None:
                return earlier
        pending = PendingCreate(new, api_key, idempotency_key, request_hash)
        if not self._tasks:  # not started (tests, CLI): write directly
            [outcome] = await self._store_batch([pending])
            await self._publish([outcome])
            return outcome
        result: asyncio.Future[CreateOutcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Queued(pending, result))
        return await result

    async def publish_topic(self, topic: str, data: Any) -> None:
        await self.broker.publish(
            topic_channel(topic), frames.envelope(frames.message(topic, data))
        )

    # -- end-user side -----------------------------------------------------------------

    async def list_inbox(
        self,
        principal: Principal,
        *,
        limit: int = 20,
        before: str | None = None,
        unread_only: bool = False,
    ) -> Page:
        before_value = _parse_id(before, "before") if before is not None else None
        limit = max(1, min(limit, MAX_PAGE))
        return await self.store.page(
            principal,
            now_ms=self.clock(),
            limit=limit,
            before=before_value,
            unread_only=unread_only,
        )

    async def unread_count(self, principal: Principal) -> int:
        return await self.store.unread_count(principal, now_ms=self.clock())

    async def get(self, principal: Principal, notification_id: str) -> Notification:
        value = _parse_known_id(notification_id)
        found = await self.store.get(principal, value, now_ms=self.clock())
        if found is None:
            raise NotFound(f"notification {notification_id} not found")
        return found

    async def mark_read(self, principal: Principal, id_texts: list[str]) -> list[str]:
        """Mark these read; returns the ids that changed. Unknown ids are ignored."""
        values = [v for v in map(ids.try_decode, id_texts) if v is not None]
        changed = (
            await self.store.mark_read(principal, values, now_ms=self.clock()) if values else []
        )
        changed_ids = [ids.encode(v) for v in changed]
        if changed_ids:
            await self._tell_user(principal, frames.read(changed_ids))
        return changed_ids

    async def mark_one_read(self, principal: Principal, notification_id: str) -> None:
        """Mark one read; NotFound if the user cannot see it. Reading twice is fine."""
        if not await self.mark_read(principal, [notification_id]):
            await self.get(principal, notification_id)  # already read, or NotFound

    async def mark_all_read(self, principal: Principal) -> str | None:
        through = await self.store.mark_all_read(principal, now_ms=self.clock())
        through_id = ids.encode(through) if through is not None else None
        await self._tell_user(principal, frames.read_all(through_id))
        return through_id

    async def delete(self, principal: Principal, notification_id: str) -> None:
        value = _parse_known_id(notification_id)
        if not await self.store.hide(principal, value, now_ms=self.clock()):
            raise NotFound(f"notification {notification_id} not found")
        await self._tell_user(principal, frames.deleted([notification_id]))

    async def missed(
        self, principal: Principal, after: str, limit: int
    ) -> list[Notification] | None:
        """What the user missed after ``after``, oldest first; None if more than ``limit``."""
        value = _parse_id(after, "after")
        return await self.store.after(principal, value, now_ms=self.clock(), limit=limit)

    async def sweep(self) -> int:
        return await self.store.sweep(now_ms=self.clock())

    # -- internals ---------------------------------------------------------------------

    async def _tell_user(self, principal: Principal, frame: bytes) -> None:
        """Send a read-state frame and the new unread count to all the user's connections."""
        count = await self.unread_count(principal)
        channel = user_key(principal.user)
        try:
            await self.broker.publish(channel, frames.envelope(frame))
            await self.broker.publish(channel, frames.envelope(frames.unread(count)))
        except Unavailable:
            log.warning("broker unavailable: read state for %s not pushed", principal.user)

    async def _publish(self, outcomes: list[CreateOutcome]) -> None:
        """Publish a stored batch in id order: one frame per notification, one round trip."""
        messages = []
        for outcome in outcomes:
            item = outcome.notification
            payload = frames.envelope(frames.notification(item), item.id)
            messages += [(key, payload) for key in outcome.audience_keys]
        try:
            await self.broker.publish_many(messages)
        except Unavailable:
            log.warning("broker unavailable: %d stored, delivered on resume", len(outcomes))

    async def _store_batch(self, batch: list[PendingCreate]) -> list[CreateOutcome]:
        return await self.store.insert(batch, now_ms=self.clock())

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(batch)

    async def _write(self, batch: list[_Queued]) -> None:
        try:
            outcomes = await self._store_batch([q.pending for q in batch])
        except Conflict:
            if len(batch) == 1:
                _fail(batch[0], Conflict("a concurrent request used the same Idempotency-Key"))
                return
            for queued in batch:  # one bad idempotency key must not sink its neighbours
                await self._write([queued])
            return
        except Exception as exc:
            for queued in batch:
                _fail(queued, exc)
            return
        await self._publish(outcomes)
        for queued, outcome in zip(batch, outcomes, strict=True):
            if not queued.result.done():
                queued.result.set_result(outcome)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                removed = await self.sweep()
                if removed:
                    log.info("sweep removed %d notifications", removed)
            except TidingsError as exc:
                log.warning("sweep failed: %s", exc)


def _fail(queued: _Queued, exc: BaseException) -> None:
    if not queued.result.done():
        queued.result.set_exception(exc)


def _parse_id(text: str, name: str) -> int:
    try:
        return ids.decode(text)
    except ValueError:
        raise BadRequest(f"`{name}` must be a notification id (16 hex digits)") from None


def _parse_known_id(text: str) -> int:
    """An id from a URL path: anything malformed simply does not exist."""
    value = ids.try_decode(text)
    if value is None:
        raise NotFound(f"notification {text[:40]} not found")
    return value
