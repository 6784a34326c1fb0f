"""The application object: wires settings, auth, store, broker, feed, hub and service."""

from __future__ import annotations

import logging
from typing import Any

from tidings.auth import Authenticator
from tidings.broker import create_broker
from tidings.broker.outbound import Outbound
from tidings.cluster import Cluster, create_directory
from tidings.coalesce import Budget
from tidings.errors import CloseCode, RateLimited, TidingsError
from tidings.feed import FEED_CHANNEL, Feed
from tidings.hub import Hub
from tidings.logs import limits_in_force
from tidings.models import Principal
from tidings.presence import Presence, create_presence
from tidings.protocol import Budgets
from tidings.ratelimit import CreateLimiter, charge, create_limiter
from tidings.redaction import redact
from tidings.rooms import Rooms
from tidings.service import NotificationService
from tidings.settings import Settings
from tidings.snoozes import SnoozeWaker
from tidings.store import SqlStore
from tidings.store.migrate import upgrade
from tidings.store.templates import TemplateStore
from tidings.store.webhooks import WebhookQueue
from tidings.templates import TemplateCatalog
from tidings.webhooks import WebhookConfig, Webhooks

log = logging.getLogger("tidings")

TEMPLATES_CHANNEL = "templates"
"""Broker channel of template changes: the payload is the event type."""


class App:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.auth = Authenticator.from_settings(settings)
        self.store = SqlStore(
            settings.database_url,
            max_age_ms=settings.retention_max_age_ms,
            max_items=settings.retention_max_items,
            # One server process owns an SQLite file: its writes need no thread.
            sole_writer=settings.workers == 1,
        )
        self.templates = TemplateCatalog(
            TemplateStore(self.store), on_change=self._template_changed
        )
        self.broker = create_broker(
            settings.broker_url,
            prefix=settings.broker_prefix,
            history=settings.topic_history,
            history_ttl=settings.topic_history_ttl,
        )
        self.outbound = Outbound(self.broker)
        self.hub = Hub(
            broker=self.broker,
            outbox_size=settings.outbox_size,
            budget=Budget(rate=settings.topic_rate, batch=settings.topic_batch),
        )
        self.feed = Feed(
            store=self.store,
            deliver=self.hub.deliver,
            deliver_change=self.hub.deliver_change,
            # One process alone (memory broker) has nobody to wake up.
            announce=None if settings.broker_url.startswith("memory") else self._announce,
            poll_interval=settings.feed_poll_interval,
        )
        self.creates: CreateLimiter | None = create_limiter(
            settings.broker_url,
            prefix=getattr(self.broker, "prefix", ""),
            rate=settings.create_rate,
            burst=settings.create_burst,
        )
        """Each API key's budget of creates; None when ``TIDINGS_CREATE_RATE`` is 0."""
        self.reads = Budgets(rate=settings.read_rate, burst=settings.read_burst)
        """Each user's budget of inbox reads (see :meth:`charge_read`)."""
        self.webhooks = Webhooks(WebhookQueue(self.store), webhook_config(settings))
        """Outgoing webhooks: ``app.webhooks.emit(type, data)`` from anywhere, never blocking."""
        self.service = NotificationService(
            store=self.store,
            outbound=self.outbound,
            webhooks=self.webhooks,
            on_committed=self.feed.committed,
            sweep_interval=settings.sweep_interval,
        )
        self.snoozes = SnoozeWaker(store=self.store, hub=self.hub)
        """Pushes snoozed notifications back when they wake (every process, from the store)."""
        self.cluster = Cluster(
            self,
            create_directory(settings.broker_url, prefix=getattr(self.broker, "prefix", "")),
            interval=settings.stats_interval,
        )
        self.presence = Presence(
            create_presence(
                settings.broker_url,
                prefix=getattr(self.broker, "prefix", ""),
                publish=self.broker.publish,
            ),
            process=self.cluster.process,
            ttl=settings.presence_ttl,
        )
        self.rooms = Rooms(self, self.presence)

    async def start(self, *, migrate: bool = True) -> None:
        if migrate:
            await upgrade(self.store.writer)
        self.store.start()
        await self.broker.start(on_message=self.on_message, on_reconnect=self.on_broker_reconnect)
        await self.broker.subscribe(FEED_CHANNEL)
        await self.broker.subscribe(TEMPLATES_CHANNEL)
        await self.feed.start()
        await self.outbound.start()
        await self.service.start()
        await self.webhooks.start()
        await self.snoozes.start()
        await self.cluster.start()
        await self.presence.start()
        log.info(
            "started: database %s, broker %s, limits %s",
            redact(self.settings.database_url),
            redact(self.settings.broker_url),
            limits_in_force(self.settings),
            extra={
                "instance": self.cluster.process,
                "database": redact(self.settings.database_url),
                "broker": redact(self.settings.broker_url),
                "limits": limits_in_force(self.settings),
            },
        )

    async def stop(self) -> None:
        """Tell clients to come back (1012), then release everything."""
        self.hub.close_all(CloseCode.SERVICE_RESTART)
        await self.presence.stop()
        await self.cluster.stop()
        await self.snoozes.stop()
        await self.service.stop()
        await self.feed.stop()
        await self.outbound.stop()
        await self.webhooks.stop()
        await self.broker.stop()
        if self.creates is not None:
            await self.creates.close()
        await self.store.close()

    def on_message(self, channel: str, payload: bytes) -> None:
        """Broker messages: wake-ups go to the feed, event frames to the hub."""
        if channel == FEED_CHANNEL:
            self.feed.wake(payload)
        elif channel == TEMPLATES_CHANNEL:
            self.templates.forget(payload.decode(errors="replace"))
        else:
            self.hub.dispatch(channel, payload)

    async def on_broker_reconnect(self) -> None:
        """Wake-ups may have been missed while the broker was away: read the log now."""
        log.warning("broker reconnected: catching up with the store")
        self.feed.wake()

    def _template_changed(self, type_: str) -> None:
        """Other processes drop their copy of this type's template (best effort)."""
        try:
            self.outbound.put((TEMPLATES_CHANNEL, type_.encode()))
        except TidingsError:
            log.warning("broker backlog full: template change of %s not announced", type_)

    async def _announce(self, newest: bytes) -> None:
        await self.broker.publish(FEED_CHANNEL, newest)

    async def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {"broker": bool(self.broker.ready)}
        try:
            await self.store.ping()
            checks["database"] = True
        except TidingsError:
            checks["database"] = False
        workers = {
            name.removeprefix("tidings-"): running
            for part in (
                self.feed.alive(),
                self.service.alive(),
                self.snoozes.alive(),
                self.cluster.alive(),
                self.webhooks.alive(),
                self.presence.alive(),
            )
            for name, running in part.items()
        }
        checks["ready"] = all(checks.values()) and all(workers.values())
        checks["workers"] = workers
        return checks

    def charge_read(self, principal: Principal) -> None:
        """Spend one of the user's inbox reads; :class:`RateLimited` when none are left.

        Pages and unread counts cost a query each, and a user may hold many connections:
        the budget is per user, shared by the WebSocket ``list`` and the REST inbox.
        """
        wait = self.reads.take(principal.user)
        if wait:
            raise RateLimited("too many inbox reads; slow down", retry_after=wait)

    async def charge_create(self, key_id: str) -> None:
        """Spend one of the API key's creates; :class:`RateLimited` when none are left."""
        if self.creates is not None:
            await charge(self.creates, key_id)

    def stats(self) -> dict[str, Any]:
        return self.hub.stats()


def webhook_config(settings: Settings) -> WebhookConfig | None:
    """The webhook part of the settings; None when no URL is configured."""
    if not settings.webhook_urls or not settings.webhook_secret:
        return None
    return WebhookConfig(
        urls=tuple(settings.webhook_urls),
        secret=settings.webhook_secret,
        timeout=settings.webhook_timeout,
        concurrency=settings.webhook_concurrency,
        max_attempts=settings.webhook_max_attempts,
        max_age_s=settings.webhook_max_age,
        keep_failed_s=settings.retention_max_age_days * 86_400,
    )
