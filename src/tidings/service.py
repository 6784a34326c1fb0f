"""Create, list, read and delete notifications: the store first, then the live side.

Creates are group-committed: concurrent requests queue up and one writer task stores
them in a single transaction. A create is acknowledged once it is committed; the
committed batch then goes to the :class:`~tidings.feed.Feed`, which fans it out in id
order (and tells other processes). Nothing after the commit can fail a create, and no
exception can stop the writer: a batch that fails is reported to its own requests, and
a batch with one bad item is retried item by item so its neighbours are stored.

Read-state frames and topic messages are queued on the :class:`Outbound` publisher and
never awaited by the request. ``notification.created`` webhooks are queued in the
create's own transaction; ``notification.read`` ones are handed to
:class:`~tidings.webhooks.Webhooks`, which buffers them without I/O. With no webhook
URL configured, either costs one attribute test.
Changes after sending (``change``, ``retract``) take a new position in the log and
reach the feed like a committed batch; a user's own changes (unread again, archive,
snooze) are read-state frames; action clicks become ``notification.action`` webhooks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tidings import frames, ids, telemetry, topics
from tidings.broker.outbound import Outbound
from tidings.errors import BadRequest, Conflict, NotFound, TidingsError, ValidationFailed
from tidings.models import (
    ALL_AUDIENCE,
    INBOX,
    InboxFilter,
    NewNotification,
    Notification,
    Page,
    Principal,
    topic_channel,
    user_key,
)
from tidings.preferences import Preferences
from tidings.store import CreateOutcome, PendingCreate, Replayed, SqlStore, StoredBatch
from tidings.tasks import BackgroundTasks
from tidings.webhooks import Webhooks

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
        outbound: Outbound,
        on_committed: Callable[[StoredBatch], None],
        webhooks: Webhooks | None = None,
        sweep_interval: float = 60.0,
        clock: Callable[[], int] = ids.time_ms,
    ) -> None:
        self.store = store
        self.outbound = outbound
        self.webhooks = webhooks if webhooks is not None and webhooks.enabled else None
        """Where webhook events go; None when no webhook URL is configured."""
        self.on_committed = on_committed
        self.clock = clock
        self.sweep_interval = sweep_interval
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue()
        self._tasks = BackgroundTasks()

    async def start(self) -> None:
        self._tasks.start(self._write_forever(), name="tidings-writer")
        self._tasks.start(self._sweep_forever(), name="tidings-sweeper")

    def alive(self) -> dict[str, bool]:
        """Whether the writer and the sweeper still run (``/readyz``)."""
        return self._tasks.alive()

    async def stop(self) -> None:
        await self._tasks.stop()

    # -- backend side ------------------------------------------------------------------

    async def create(
        self,
        new: NewNotification,
        *,
        api_key: str | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> CreateOutcome:
        """Store a notification, which then goes live; a reused idempotency key gets the first."""
        if idempotency_key and api_key and request_hash:
            earlier = await self.store.find_idempotent(api_key, idempotency_key, request_hash)
            if earlier is not None:
                return earlier
        pending = PendingCreate(new, api_key, idempotency_key, request_hash)
        if not self._tasks:  # not started (tests, CLI): write directly
            stored = await self._store_batch([pending])
            self._committed(stored)
            return stored.outcomes[0]
        result: asyncio.Future[CreateOutcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Queued(pending, result))
        return await result

    async def publish_topic(self, topic: str, data: Any, *, user: str | None = None) -> None:
        """Queue a topic message for its history and subscribers (no inbox entry).

        The broker mints its id when appending it (see :mod:`tidings.broker.history`);
        ``user`` names a publishing end user in the frame.
        """
        self.outbound.put((topic_channel(topic), topics.tail(data, user)))

    # -- end-user side -----------------------------------------------------------------

    async def list_inbox(
        self,
        principal: Principal,
        *,
        limit: int = 20,
        before: str | None = None,
        unread_only: bool = False,
        only: InboxFilter = INBOX,
    ) -> Page:
        before_value = _parse_id(before, "before") if before is not None else None
        limit = max(1, min(limit, MAX_PAGE))
        return await self.store.page(
            principal,
            now_ms=self.clock(),
            limit=limit,
            before=before_value,
            unread_only=unread_only,
            only=only,
        )

    async def unread_count(self, principal: Principal) -> int:
        return await self.store.unread_count(principal, now_ms=self.clock())

    async def welcome(self, principal: Principal) -> tuple[Preferences, int]:
        """What a connecting client needs first: its preferences and unread count."""
        return await self.store.welcome(principal, now_ms=self.clock())

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
            if self.webhooks is not None:
                self.webhooks.emit(
                    "notification.read", {"user": principal.user, "ids": changed_ids}
                )
            await self._tell_user(principal, frames.read(changed_ids))
        return changed_ids

    async def mark_one_read(self, principal: Principal, notification_id: str) -> None:
        """Mark one read; NotFound if the user cannot see it. Reading twice is fine."""
        if not await self.mark_read(principal, [notification_id]):
            await self.get(principal, notification_id)  # already read, or NotFound

    async def mark_all_read(self, principal: Principal) -> str | None:
        through = await self.store.mark_all_read(principal, now_ms=self.clock())
        through_id = ids.encode(through) if through is not None else None
        if self.webhooks is not None:
            self.webhooks.emit(
                "notification.read", {"user": principal.user, "all": True, "through": through_id}
            )
        await self._tell_user(principal, frames.read_all(through_id))
        return through_id

    async def delete(self, principal: Principal, notification_id: str) -> None:
        value = _parse_known_id(notification_id)
        if not await self.store.hide(principal, value, now_ms=self.clock()):
            raise NotFound(f"notification {notification_id} not found")
        await self._tell_user(principal, frames.deleted([notification_id]))

    async def mark_unread(self, principal: Principal, notification_id: str) -> Notification:
        """Mark one unread again (even below a "read all"); NotFound if the user cannot see it."""
        now = self.clock()
        values = {"read_at": None, "unread_at": now}
        item = await self._set_own(principal, notification_id, values, now)
        await self._tell_user(principal, frames.updated(item, principal.locale))
        return item

    async def archive(self, principal: Principal, notification_id: str) -> Notification:
        """Move one out of the inbox into the archive (for this user only)."""
        now = self.clock()
        item = await self._set_own(principal, notification_id, {"archived_at": now}, now)
        await self._tell_user(principal, frames.archived([item.id]))
        return item

    async def unarchive(self, principal: Principal, notification_id: str) -> Notification:
        now = self.clock()
        item = await self._set_own(principal, notification_id, {"archived_at": None}, now)
        await self._tell_user(principal, frames.updated(item, principal.locale))
        return item

    async def archive_read(self, principal: Principal) -> list[str]:
        """Archive every read item of the inbox; returns their ids."""
        done = await self.store.archive_read(principal, now_ms=self.clock())
        done_ids = [ids.encode(value) for value in done]
        if done_ids:
            await self._tell_user(principal, frames.archived(done_ids))
        return done_ids

    async def snooze(
        self, principal: Principal, notification_id: str, until: datetime
    ) -> Notification:
        """Hide one until ``until``; it then comes back unread, pushed live (see Snoozes).

        ``until`` must be in the future and within the retention age of the notification
        (it would be swept before waking): a 422 otherwise.
        """
        now = self.clock()
        value = _parse_known_id(notification_id)
        until_ms = int(until.timestamp() * 1000)
        if until_ms <= now:
            raise ValidationFailed("`until` must be in the future", code="snooze_in_past")
        if until_ms >= ids.ms_of(value) + self.store.max_age_ms:
            raise ValidationFailed(
                "`until` is beyond the retention age: the notification would be gone by then",
                code="snooze_too_late",
            )
        values = {"snoozed_until": until_ms, "read_at": None, "unread_at": now}
        item = await self._set_own(principal, notification_id, values, now)
        await self._tell_user(principal, frames.snoozed([item.id], item.snoozed_until))
        return item

    async def act(self, principal: Principal, notification_id: str, action: str) -> dict[str, Any]:
        """A click on one of the notification's actions: the backend hears of it through the
        ``notification.action`` webhook. NotFound for an unknown action, or a notification
        the user cannot see."""
        item = await self.get(principal, notification_id)
        chosen = next((a for a in item.actions or () if a.get("id") == action), None)
        if chosen is None:
            raise NotFound(f"notification {notification_id} has no action {action[:100]!r}")
        if self.webhooks is not None:
            # The notification as in the API (without this user's read state), as in
            # notification.created: receivers need not look it up.
            data = {"notification": item.content(), "user": principal.user, "action": action}
            try:
                self.webhooks.emit("notification.action", data)
            except Exception:  # the click was taken; a webhook queue problem is logged
                log.exception("could not queue the notification.action webhook")
        return chosen

    async def _set_own(
        self, principal: Principal, notification_id: str, values: dict[str, int | None], now: int
    ) -> Notification:
        value = _parse_known_id(notification_id)
        if not await self.store.set_receipt(principal, value, values, now_ms=now):
            raise NotFound(f"notification {notification_id} not found")
        return await self.get(principal, notification_id)

    # -- changes after sending (backend) -----------------------------------------------

    async def change(self, notification_id: str, fields: dict[str, Any]) -> Notification:
        """Change a notification for every recipient; their clients get ``updated``."""
        value = _parse_known_id(notification_id)
        stored = await self.store.change(value, fields, now_ms=self.clock())
        if stored is None:
            raise NotFound(f"notification {notification_id} not found")
        self._committed(stored)
        return stored.outcomes[0].notification

    async def retract(self, notification_id: str) -> None:
        """Take a notification back for everyone; their clients get ``deleted``."""
        value = _parse_known_id(notification_id)
        stored = await self.store.retract(value, now_ms=self.clock())
        if stored is None:
            raise NotFound(f"notification {notification_id} not found")
        self._committed(stored)

    async def missed(self, principal: Principal, after: str, limit: int) -> list[Replayed] | None:
        """What the user missed after log position ``after``, in log order, each item once
        in its final state; None if more than ``limit``."""
        value = _parse_id(after, "after")
        return await self.store.after(principal, value, now_ms=self.clock(), limit=limit)

    async def sweep(self) -> int:
        return await self.store.sweep(now_ms=self.clock())

    # -- preferences -------------------------------------------------------------------

    async def preferences(self, user: str) -> Preferences:
        return await self.store.preferences(user)

    async def set_preferences(
        self, user: str, value: Preferences, principal: Principal | None = None
    ) -> Preferences:
        """Store them and tell the user's connections (and, knowing their roles, the count)."""
        await self.store.set_preferences(user, value, now_ms=self.clock())
        channel = user_key(user)
        messages = [(channel, frames.preferences(value.to_public()))]
        if principal is not None:
            messages.append((channel, frames.unread(await self.unread_count(principal))))
        try:
            self.outbound.put(*messages)
        except TidingsError:
            log.warning("broker backlog full: preferences of %s not pushed", user)
        return value

    # -- internals ---------------------------------------------------------------------

    async def _tell_user(self, principal: Principal, frame: bytes) -> None:
        """Send a read-state frame and the new unread count to all the user's connections."""
        count = await self.unread_count(principal)
        channel = user_key(principal.user)
        try:
            self.outbound.put((channel, frame), (channel, frames.unread(count)))
        except TidingsError:
            log.warning("broker backlog full: read state for %s not pushed", principal.user)

    def _committed(self, stored: StoredBatch) -> None:
        """Hand a committed batch to the live side; a failure there must not fail creates."""
        try:
            telemetry.count_created(
                (o.notification.type, o.notification.level) for o in stored.outcomes if o.created
            )
            self.on_committed(stored)
        except Exception:
            log.exception("fanning out %d committed notifications failed", len(stored.outcomes))

    async def _store_batch(self, batch: list[PendingCreate]) -> StoredBatch:
        if self.webhooks is None:
            return await self.store.insert(batch, now_ms=self.clock())
        stored = await self.store.insert(
            batch, now_ms=self.clock(), webhook_rows=self._created_webhooks
        )
        self.webhooks.written()
        return stored

    def _created_webhooks(self, outcomes: list[CreateOutcome]) -> list[dict[str, Any]]:
        """``notification.created`` rows, queued in the create's own transaction."""
        assert self.webhooks is not None
        created = [  # not a create that replaced an earlier one by key
            created_event(outcome) for outcome in outcomes if outcome.created and not outcome.change
        ]
        return self.webhooks.rows("notification.created", created)

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except Exception as exc:  # never let one batch stop every later create
                log.exception("writing a batch of %d failed", len(batch))
                for queued in batch:
                    _fail(queued, exc)

    async def _write(self, batch: list[_Queued]) -> None:
        try:
            stored = await self._store_batch([q.pending for q in batch])
        except (Conflict, ValidationFailed) as exc:
            if len(batch) == 1:
                if isinstance(exc, Conflict):
                    exc = Conflict("a concurrent request used the same Idempotency-Key")
                _fail(batch[0], exc)
                return
            for queued in batch:  # one bad item must not sink its neighbours
                await self._write([queued])
            return
        except Exception as exc:
            for queued in batch:
                _fail(queued, exc)
            return
        self._committed(stored)
        for queued, outcome in zip(batch, stored.outcomes, strict=True):
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


def created_event(outcome: CreateOutcome) -> dict[str, Any]:
    """The data of ``notification.created``: the notification and who it is for."""
    notification = outcome.notification.to_public()
    del notification["read_at"]
    users = [key[2:] for key in outcome.audience_keys if key.startswith("u:")]
    roles = [key[2:] for key in outcome.audience_keys if key.startswith("r:")]
    everyone = ALL_AUDIENCE in outcome.audience_keys
    return {"notification": notification, "to": {"users": users, "roles": roles, "all": everyone}}


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
