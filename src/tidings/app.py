"""The application object: wires settings, auth, store, broker, hub and service together."""

from __future__ import annotations

import logging
from typing import Any

from tidings.auth import Authenticator
from tidings.broker import create_broker
from tidings.errors import CloseCode, TidingsError
from tidings.hub import Hub
from tidings.service import NotificationService
from tidings.settings import Settings
from tidings.store import SqlStore
from tidings.store.migrate import upgrade

log = logging.getLogger("tidings")


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
        self.broker = create_broker(settings.broker_url)
        self.hub = Hub(broker=self.broker, outbox_size=settings.outbox_size)
        self.service = NotificationService(
            store=self.store, broker=self.broker, sweep_interval=settings.sweep_interval
        )

    async def start(self, *, migrate: bool = True) -> None:
        if migrate:
            await upgrade(self.store.writer)
        await self.broker.start(on_message=self.hub.dispatch, on_reconnect=self.on_broker_reconnect)
        await self.service.start()

    async def stop(self) -> None:
        """Tell clients to come back (1012), then release everything."""
        self.hub.close_all(CloseCode.SERVICE_RESTART)
        await self.service.stop()
        await self.broker.stop()
        await self.store.close()

    async def on_broker_reconnect(self) -> None:
        """The broker was away: connections may have missed messages, so they resync."""
        log.warning("broker reconnected: resyncing live connections")
        self.hub.resync_all()

    async def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {"broker": bool(self.broker.ready)}
        try:
            await self.store.ping()
            checks["database"] = True
        except TidingsError:
            checks["database"] = False
        checks["ready"] = all(checks.values())
        return checks

    def stats(self) -> dict[str, Any]:
        return self.hub.stats()
