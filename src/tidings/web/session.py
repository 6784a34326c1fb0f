"""What the WebSocket and SSE pumps share: admission, start and replay, timers.

A :class:`Session` binds one :class:`~tidings.connection.Connection` to the application
(hub and service). The transports own the socket; the session owns the order of
things: register holding, welcome, replay oldest first, release.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import TYPE_CHECKING, Any

from tidings import frames, ids, protocol, rooms, telemetry
from tidings.connection import Connection
from tidings.errors import BadRequest, CloseCode, Forbidden, RateLimited, TidingsError
from tidings.models import Principal
from tidings.preferences import Preferences
from tidings.protocol import (
    Act,
    ListInbox,
    MarkAllRead,
    MarkRead,
    Ping,
    Pong,
    Publish,
    Request,
    Subscribe,
    Unsubscribe,
)

if TYPE_CHECKING:
    from tidings.app import App

log = logging.getLogger("tidings.realtime")

MAX_TOPICS = rooms.MAX_TOPICS
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
        raise Refused(CloseCode.INVALID_AFTER, invalid)
    return principal, after


def open_session(
    app: App,
    principal: Principal,
    *,
    after: str | None,
    transport: str,
    user_agent: str | None = None,
) -> Session:
    """Register a connection within its user's cap, holding live frames until started.

    Raise :class:`Refused` (4009, HTTP 429) when the user has no slot left. The caller
    must :meth:`Session.finish` whatever happens next. Nothing is awaited before the
    registration: an open that waited first (say, for the user's preferences) let the
    server answer other opens meanwhile, and the cap was overshot (faults/test_abuse).
    """
    # Without `after`, the watermark starts at the feed's cursor: what comes live is new to
    # this client, and a change to anything older is an `updated` (it may be in its list).
    start = after if after is not None else ids.encode(app.feed.cursor)
    conn = app.hub.connection(principal, after=start, transport=transport)
    # Interned: thousands of connections share a handful of user agents.
    conn.user_agent = sys.intern(user_agent[:300]) if user_agent else None
    try:
        app.hub.register(conn, hold=True, limit=app.settings.max_connections_per_user)
    except RateLimited as crowded:
        raise Refused(CloseCode.TOO_MANY_CONNECTIONS, crowded) from None
    log.debug(
        "connection %s opened (%s) for %s",
        conn.id,
        transport,
        principal.user,
        extra=conn.log_extra,
    )
    if app.webhooks.enabled:
        app.webhooks.emit(
            "connection.opened",
            {"user": principal.user, "connection": conn.id, "transport": transport},
        )
    return Session(app, conn)


class Session:
    """One connection's conversation with the hub and the service."""

    def __init__(self, app: App, conn: Connection) -> None:
        self.app = app
        self.conn = conn
        self.principal = conn.principal
        self._finished = False

    async def start(self, after: str | None) -> None:
        """Welcome, replay and release the held live frames (no gap, no duplicate)."""
        settings = self.app.settings
        await self.app.hub.ready(self.conn)
        # Once changes reach this connection through its user channel, before the welcome.
        preferences, unread = await self.app.service.welcome(self.principal)
        self.app.hub.set_preferences(self.conn, _relevant(preferences))
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
        if preferences.hides_anything:
            # Live notifications held since registration were offered before the
            # preferences were known: take them from the store instead, which filters.
            held = self.conn.drop_held_notifications()
            if held:
                await self.replay(ids.encode(ids.decode(held[0]) - 1))
        self.conn.release()

    async def replay(self, after: str) -> None:
        missed = await self.app.service.missed(
            self.principal, after, self.app.settings.resume_limit
        )
        if missed is None:
            telemetry.RESYNCS.inc()
            self.conn.send(protocol.resync("too_many_missed"))
            return
        if missed:
            telemetry.REPLAYED.inc(len(missed))
        locale = self.principal.locale
        prefs = self.conn.preferences
        silent = prefs is not None and prefs.silent(time.time() * 1000)
        for entry in missed:
            item, position = entry.notification, ids.encode(entry.position)
            if entry.change == "retracted":
                frame = frames.retracted(item.id, position)
            elif entry.change == "updated":
                frame = frames.updated(item, locale, position=position)
            else:
                frame = frames.notification(item, locale, silent=silent, position=position)
            self.conn.send(frame, position)

    async def tick_forever(self, heartbeat: protocol.Heartbeat, *, silence_kills: bool) -> None:
        """Ping every interval; close on token expiry or (WebSocket) a silent client."""
        while True:
            wait = self.tick(heartbeat, silence_kills=silence_kills)
            if wait is None:
                return
            await asyncio.sleep(wait)

    def tick(self, heartbeat: protocol.Heartbeat, *, silence_kills: bool) -> float | None:
        """Do what is due now: close on token expiry or (WebSocket) a silent client, else
        ping if it is time. Seconds until the next look, or None once closed."""
        if self.conn.closed:
            return None
        expires_at = self.principal.expires_at
        if expires_at is not None:
            # The leeway that admitted the token also keeps it: no accept-then-close loop.
            expires_at += self.app.settings.jwt_leeway
            if time.time() >= expires_at:
                self.conn.close(CloseCode.UNAUTHENTICATED, "token expired")
                return None
        if not silence_kills:
            heartbeat.heard()  # one way (SSE): only pings fall due, not a silent client
        elif heartbeat.dead():
            self.conn.close(CloseCode.GOING_AWAY, "heartbeat timeout")
            return None
        if heartbeat.ping_due():
            self.conn.send(frames.PING)
            heartbeat.pinged()
        if self.conn.closed:
            return None
        wait = heartbeat.next_deadline()
        if expires_at is not None:
            wait = min(wait, expires_at - time.time())
        return max(wait, 0.01)

    def answer_at_once(self, request: Request) -> tuple[bool, bytes | None]:
        """``(True, reply)`` for a request answered without awaiting anything (ping,
        pong); ``(False, None)`` for one that needs :meth:`answer`."""
        match request:
            case Ping(ref=ref):
                return True, protocol.pong(ref)
            case Pong():
                return True, None
        return False, None

    async def answer(self, request: Request) -> bytes | None:
        """The reply to one client request (errors become ``error`` frames with its ref)."""
        try:
            return await self._answer(request)
        except TidingsError as exc:
            return frames.error(exc.code, exc.message, request.ref)

    async def _answer(self, request: Request) -> bytes | None:
        immediate, reply = self.answer_at_once(request)
        if immediate:
            return reply
        service = self.app.service
        match request:
            case MarkRead(ids=wanted, ref=ref):
                changed = await service.mark_read(self.principal, list(wanted))
                return protocol.ack(ref, ids=changed)
            case MarkAllRead(ref=ref):
                through = await service.mark_all_read(self.principal)
                return protocol.ack(ref, through=through)
            case ListInbox(limit=limit, before=before, ref=ref, only=only):
                self.app.charge_read(self.principal)
                page = await service.list_inbox(
                    self.principal, limit=limit, before=before, only=only
                )
                return list_frame(page, ref, self.principal.locale)
            case Act(id=target, action=action, ref=ref):
                await service.act(self.principal, target, action)
                return protocol.ack(ref, id=target, action=action)
            case Subscribe():
                return await self._subscribe(request)
            case Unsubscribe(topics=names, ref=ref):
                for name in names:
                    await self.app.rooms.unsubscribe(self.conn, name)
                return protocol.ack(ref, **_named(names))
            case Publish():
                return await self._publish(request)
        raise AssertionError(f"unhandled request {request!r}")

    async def _subscribe(self, request: Subscribe) -> bytes | None:
        # A refusal is an error reply (via `answer`), not a 4003 close: one refused
        # subscription must not cut the user's notification stream (README changelog).
        extra = await self.app.rooms.subscribe(self.conn, request)
        return protocol.ack(request.ref, **_named(request.topics), **extra)

    async def _publish(self, request: Publish) -> bytes | None:
        try:
            await self.app.rooms.publish(self.principal, request.topic, request.data)
        except TidingsError as exc:
            if self.app.rooms.refused(self.conn, exc):
                self.conn.close(CloseCode.RATE_LIMITED, "publishing too fast")
                return None
            raise
        self.app.rooms.published(self.conn)
        return protocol.ack(request.ref, topic=request.topic)

    def finish(self) -> None:
        """Close and unregister; synchronous, so it completes even in a cancelled task.

        SSE reaches this twice (its generator and its response both clean up): only the
        first call counts.
        """
        if self._finished:
            return
        self._finished = True
        self.conn.close(CloseCode.GOING_AWAY, "finished")
        self.app.hub.unregister(self.conn)
        if self.app.webhooks.enabled:
            self.app.webhooks.emit("connection.closed", connection_closed(self.conn))
        log.debug(
            "connection %s closed (%s %s)",
            self.conn.id,
            self.conn.close_code,
            self.conn.close_reason,
            extra=self.conn.log_extra,
        )


def connection_closed(conn: Connection) -> dict[str, Any]:
    """The data of ``connection.closed``: who, which, how and after how long."""
    return {
        "user": conn.user,
        "connection": conn.id,
        "transport": conn.transport,
        "code": conn.close_code,
        "reason": conn.close_reason,
        "seconds": round(time.time() - conn.connected_at, 3),
    }


def _named(names: tuple[str, ...]) -> dict[str, Any]:
    """``topic`` for one, ``topics`` for several: the ack names what the request named."""
    return {"topic": names[0]} if len(names) == 1 else {"topics": list(names)}


def _relevant(preferences: Preferences) -> Preferences | None:
    """What a connection needs to hold: None when nothing is muted and no DND is ahead."""
    return preferences if preferences.matters(time.time() * 1000) else None


def list_frame(page: Any, ref: Any, locale: str | None = None) -> bytes:
    return frames.encode(
        {
            "type": "list",
            "ref": ref,
            "items": [item.to_public(locale) for item in page.items],
            "unread_count": page.unread_count,
            "next_before": page.next_before,
        }
    )


async def cancel(*tasks: asyncio.Task[Any] | None) -> None:
    live = [task for task in tasks if task is not None]
    for task in live:
        task.cancel()
    await asyncio.gather(*live, return_exceptions=True)
