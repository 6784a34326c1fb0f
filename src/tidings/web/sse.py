"""Server-Sent Events at ``GET /api/v1/me/stream``: the same frames, one way.

Each frame becomes an event named after its ``type`` whose data is the JSON frame;
notifications carry ``id:`` so the browser's ``Last-Event-ID`` resumes exactly after
them. Framing is the pure :func:`tidings.protocol.sse_event`. Clients act through the
HTTP API (mark read, delete, publish); topics are chosen with ``?topics=a,logs.*``
(names or globs), replayed with ``&history=N`` or ``&since=<message id>``.

Two transports serve it, from the helpers here: this ASGI endpoint (any ASGI server,
and ``TIDINGS_SSE_TRANSPORT=asgi``) and :mod:`tidings.web.sseserver`, which ``tidings
serve`` uses by default (no ASGI, no task per idle stream).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from tidings import frames, protocol
from tidings.connection import ConnectionClosed
from tidings.errors import CloseCode, TidingsError, ValidationFailed
from tidings.web.session import (
    MAX_TOPICS,
    SSE_RETRY_MS,
    Refused,
    Session,
    admit,
    open_session,
)
from tidings.web.timerwheel import shared_wheel

if TYPE_CHECKING:
    from tidings.app import App

PATH = "/api/v1/me/stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
MEDIA_TYPE = "text/event-stream"
RETRY = protocol.sse_retry(SSE_RETRY_MS)
"""Prefixed to the first event of a stream (the welcome, or the error that ends it)."""
BATCH = 64
"""Most events written in one chunk when the outbox has a backlog."""


async def stream_endpoint(request: Request) -> StreamingResponse:
    """Mounted at ``GET /api/v1/me/stream``.

    Token in ``Authorization: Bearer`` or ``?token=`` (EventSource cannot set headers);
    resume with ``Last-Event-ID`` or ``?after=``; topics with ``?topics=a,b``.
    """
    app: App = request.app.state.tidings
    try:
        session, after, replay = open_stream(app, request.headers, request.query_params)
    except Refused as refused:
        raise refused.error from None
    return _Stream(session, _events(session, after, replay))


def open_stream(
    app: App, headers: Any, query: Any
) -> tuple[Session, str | None, protocol.Subscribe | None]:
    """Admit a stream and take its slot: the session, its resume point and its topics.

    ``headers`` and ``query`` map lower-case names to their (first) value. Raise
    :class:`Refused` (origin, token, resume point, connection cap) or a
    :class:`TidingsError` (topics); the caller must :meth:`Session.finish` the session.
    """
    principal, after = admit(
        app, headers=headers, query=query, after_header=headers.get("last-event-id")
    )
    topics = _topics(query.get("topics"), principal.topics)
    replay = _replay(query, topics)
    session = open_session(
        app, principal, after=after, transport="sse", user_agent=headers.get("user-agent")
    )
    return session, after, replay


async def start_stream(
    session: Session, after: str | None, replay: protocol.Subscribe | None
) -> bytes | None:
    """Welcome, resume and topic replay; None, or the event that ends a stream that
    could not start (the store unavailable, say)."""
    try:
        await session.start(after)
        if replay is not None:
            await session.app.rooms.subscribe(session.conn, replay)
    except TidingsError as exc:
        return RETRY + protocol.sse_event(frames.error(exc.code, exc.message))
    return None


def close_event(code: int | None, reason: str) -> bytes | None:
    """The last event of a stream the server ends (token expired, slow consumer,
    restart), saying why; None when there is nothing to say (the client went away)."""
    if code is None or code == CloseCode.GOING_AWAY:
        return None
    return protocol.sse_event(frames.encode({"type": "close", "code": code, "reason": reason}))


class _Stream(StreamingResponse):
    """An event stream that gives its connection's slot back however the response ends.

    Starlette ends a stream whose client left by cancelling it: cleanup that awaits would
    be cancelled too, and a stream never started runs no ``finally`` at all. So the
    release is synchronous, and here, where it runs in every case.
    """

    def __init__(self, session: Session, events: AsyncIterator[bytes]) -> None:
        super().__init__(events, media_type=MEDIA_TYPE, headers=HEADERS)
        self.session = session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.session.finish()


def _topics(raw: str | None, allowed: tuple[str, ...]) -> list[str]:
    topics = [t.strip() for t in (raw or "").split(",") if t.strip()]
    if len(topics) > MAX_TOPICS:
        raise ValidationFailed(f"at most {MAX_TOPICS} topics per stream", code="too_many_topics")
    for topic in topics:
        protocol.check_subscription(topic, allowed)
    return topics


def _replay(query: Any, topics: list[str]) -> protocol.Subscribe | None:
    """``?topics=`` with ``history=N`` or ``since=<message id>``, as one subscribe."""
    if not topics:
        return None
    frame: dict[str, Any] = {"type": "subscribe", "topics": topics}
    for name in ("history", "since"):
        value = query.get(name)
        if value is not None:
            frame[name] = int(value) if name == "history" and value.isdigit() else value
    try:
        request = protocol.parse(orjson.dumps(frame))
    except protocol.ProtocolError as exc:
        raise ValidationFailed(exc.message, code=exc.code) from None
    assert isinstance(request, protocol.Subscribe)
    return request


async def _events(
    session: Session, after: str | None, replay: protocol.Subscribe | None
) -> AsyncIterator[bytes]:
    heartbeat = protocol.Heartbeat(interval=session.app.settings.heartbeat)
    ticker: _Ticker | None = None
    try:
        failed = await start_stream(session, after, replay)
        if failed is not None:
            yield failed
            return
        ticker = _Ticker(session, heartbeat)
        retry = RETRY  # rides on the welcome event
        while True:
            try:
                chunk = retry + await _next_chunk(session)
                retry = b""
            except ConnectionClosed as closed:
                last = close_event(closed.code, closed.reason)
                if last is not None:
                    yield last
                return
            yield chunk
    finally:
        session.finish()  # no await here: this may run in a cancelled scope
        if ticker is not None:
            ticker.stop()


class _Ticker:
    """Pings and token expiry for one stream, from the process's timer wheel (no task)."""

    __slots__ = ("heartbeat", "session", "wheel", "wheel_slot")

    def __init__(self, session: Session, heartbeat: protocol.Heartbeat) -> None:
        self.session = session
        self.heartbeat = heartbeat
        self.wheel = shared_wheel()
        self.wheel_slot: int | None = None
        self.wheel.schedule(self, heartbeat.next_deadline())

    def on_timer(self) -> None:
        wait = self.session.tick(self.heartbeat, silence_kills=False)
        if wait is not None:
            self.wheel.schedule(self, wait)

    def stop(self) -> None:
        self.wheel.cancel(self)


async def _next_chunk(session: Session) -> bytes:
    """One event, plus whatever else is already queued (up to :data:`BATCH`)."""
    conn = session.conn
    notification_id, frame = await conn.next_frame()
    parts = [protocol.sse_event(frame, event_id=notification_id)]
    while conn.pending() and len(parts) < BATCH:
        notification_id, frame = await conn.next_frame()
        parts.append(protocol.sse_event(frame, event_id=notification_id))
    return b"".join(parts)
