"""What the WebSocket and SSE pumps share: admission, start and replay, resync, timers.

A :class:`Session` binds one :class:`~tidings.connection.Connection` to the application
(hub and service). The transports own the socket; the session owns the order of
things: register holding, welcome, replay oldest first, release; and after a broker
outage, hold, replay what was missed, release.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from tidings import frames, ids, protocol
from tidings.connection import Connection
from tidings.errors import BadRequest, CloseCode, Forbidden, RateLimited, TidingsError
from tidings.models import Principal
from tidings.protocol import (
    ListInbox,
    MarkAllRead,
    MarkRead,
    Ping,
    Pong,
    Request,
    Subscribe,
    Unsubscribe,
)

if TYPE_CHECKING:
    from tidings.app import App

log = logging.getLogger("tidings.realtime")

MAX_TOPICS = 64
"""Topics one connection may subscribe to at once."""
SSE_RETRY_MS = 3000


class Refused(Exception):
    """The connection may not start; ``code`` is the close code, ``error`` the HTTP one."""

    def __init__(self, code: CloseCode, error: TidingsError) -> None:
        super().__init__(error.message)
        self.code = code
        self.error = error


def admit(
    app: App,
    *,
    headers: Any,
    query: Any,
    after_header: str | None = None,
) -> tuple[Principal, str | None]:
    """Check origin, token and resume point; raise :class:`Refused` saying why not."""
    settings = app.settings
    if not protocol.origin_allowed(
        headers.get("origin"), headers.get("host"), settings.allowed_origins
    ):
        raise Refused(CloseCode.FORBIDDEN, Forbidden("origin not allowed", code="bad_origin"))
    token = protocol.bearer_token(headers.get("authorization"), query.get("token"))
    try:
        principal = app.auth.verify_token(token or "")
    except TidingsError as exc:
        raise Refused(CloseCode.UNAUTHENTICATED, exc) from None
    after = after_header or query.get("after") or None
    if after is not None and ids.try_decode(after) is None:
        invalid = BadRequest("`after` must be a notification id", code="invalid_after")
        raise Refused(CloseCode.PROTOCOL_ERROR, invalid)
    if len(app.hub.connections_for_user(principal.user)) >= settings.max_connections_per_user:
        crowded = RateLimited("too many connections for this user", code="too_many_connections")
        raise Refused(CloseCode.TOO_MANY_CONNECTIONS, crowded)
    return principal, after


class Session:
    """One connection's conversation with the hub and the service."""

    def __init__(self, app: App, conn: Connection) -> None:
        self.app = app
        self.conn = conn
        self.principal = conn.principal

    async def start(self, after: str | None) -> None:
        """Register holding, then welcome, replay and release (no gap, no duplicate)."""
        settings = self.app.settings
        await self.app.hub.register(self.conn, hold=True)
        unread = await self.app.service.unread_count(self.principal)
        self.conn.send(
            frames.welcome(
                user=self.principal.user,
                connection=self.conn.id,
                heartbeat=settings.heartbeat,
                unread=unread,
            )
        )
        if after is not None:
            await self.replay(after)
        self.conn.release()

    async def replay(self, after: str) -> None:
        missed = await self.app.service.missed(
            self.principal, after, self.app.settings.resume_limit
        )
        if missed is None:
            self.conn.send(protocol.resync("too_many_missed"))
            return
        for item in missed:
            self.conn.send(frames.notification(item), item.id)

    async def resync_forever(self) -> None:
        """Replay after every broker reconnect; ends when the connection closes."""
        while True:
            await self.conn.wait_resync()
            try:
                async with self.app.hub.resync_slots:
                    await self.replay(self.conn.resume_point())
            except TidingsError as exc:
                log.warning("resync of %s failed: %s", self.conn.id, exc)
                self.conn.close(CloseCode.SERVICE_RESTART, "resync failed")
                return
            self.conn.release()

    async def tick_forever(self, heartbeat: protocol.Heartbeat, *, silence_kills: bool) -> None:
        """Ping every interval; close on token expiry or (WebSocket) a silent client."""
        expires_at = self.principal.expires_at
        if expires_at is not None:
            # The leeway that admitted the token also keeps it: no accept-then-close loop.
            expires_at += self.app.settings.jwt_leeway
        while not self.conn.closed:
            if expires_at is not None and time.time() >= expires_at:
                self.conn.close(CloseCode.UNAUTHENTICATED, "token expired")
                return
            if silence_kills and heartbeat.dead():
                self.conn.close(CloseCode.GOING_AWAY, "heartbeat timeout")
                return
            if heartbeat.ping_due():
                self.conn.send(frames.PING)
                heartbeat.pinged()
            wait = heartbeat.next_deadline()
            if expires_at is not None:
                wait = min(wait, expires_at - time.time())
            await asyncio.sleep(max(wait, 0.01))

    async def answer(self, request: Request) -> bytes | None:
        """The reply to one client request (errors become ``error`` frames with its ref)."""
        try:
            return await self._answer(request)
        except TidingsError as exc:
            return frames.error(exc.code, exc.message, request.ref)

    async def _answer(self, request: Request) -> bytes | None:
        service = self.app.service
        match request:
            case Ping(ref=ref):
                return protocol.pong(ref)
            case Pong():
                return None
            case MarkRead(ids=wanted, ref=ref):
                changed = await service.mark_read(self.principal, list(wanted))
                return protocol.ack(ref, ids=changed)
            case MarkAllRead(ref=ref):
                through = await service.mark_all_read(self.principal)
                return protocol.ack(ref, through=through)
            case ListInbox(limit=limit, before=before, ref=ref):
                page = await service.list_inbox(self.principal, limit=limit, before=before)
                return list_frame(page, ref)
            case Subscribe():
                return await self._subscribe(request)
            case Unsubscribe(topic=topic, ref=ref):
                await self.app.hub.unsubscribe(self.conn, topic)
                return protocol.ack(ref, topic=topic)
        raise AssertionError(f"unhandled request {request!r}")

    async def _subscribe(self, request: Subscribe) -> bytes | None:
        if not protocol.topic_allowed(request.topic, self.principal.topics):
            # An error reply, not a 4003 close: one refused subscription must not cut
            # the user's notification stream (see the README's changelog).
            message = f"topic not allowed by the token's `topics` claim: {request.topic}"
            return frames.error("forbidden", message[:200], request.ref)
        if request.topic not in self.conn.topics and len(self.conn.topics) >= MAX_TOPICS:
            message = f"at most {MAX_TOPICS} topics per connection"
            return frames.error("too_many_topics", message, request.ref)
        await self.app.hub.subscribe(self.conn, request.topic, request.filter)
        return protocol.ack(request.ref, topic=request.topic)

    async def finish(self) -> None:
        await self.app.hub.unregister(self.conn)


def list_frame(page: Any, ref: Any) -> bytes:
    return frames.encode(
        {
            "type": "list",
            "ref": ref,
            "items": [item.to_public() for item in page.items],
            "unread_count": page.unread_count,
            "next_before": page.next_before,
        }
    )


async def cancel(*tasks: asyncio.Task[Any] | None) -> None:
    live = [task for task in tasks if task is not None]
    for task in live:
        task.cancel()
    await asyncio.gather(*live, return_exceptions=True)
