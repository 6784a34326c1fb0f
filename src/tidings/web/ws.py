"""WebSocket transport at ``/ws``: a thin pump between the socket and the protocol.

Tasks per connection: the reader parses client frames and answers them, the ticker
pings and enforces heartbeat and token expiry, and (only where frames cannot be written
to the transport directly) a writer drains the connection's outbox. Whoever decides
the connection is over calls ``conn.close(code)``; the endpoint then closes the socket
with that code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from tidings import protocol
from tidings.connection import ConnectionClosed
from tidings.errors import CloseCode, TidingsError
from tidings.web.session import Refused, Session, admit, cancel, open_session
from tidings.web.wsdirect import bound_socket, direct_writer, socket_gone

if TYPE_CHECKING:
    from tidings.app import App

log = logging.getLogger("tidings.realtime")

CLOSE_TIMEOUT = 10.0
"""Seconds a close frame may wait behind frames a slow client has not read yet."""


async def websocket_endpoint(websocket: WebSocket) -> None:
    """Mounted at ``/ws``. Token in ``?token=`` or ``Authorization: Bearer``."""
    app: App = websocket.app.state.tidings
    try:
        principal, after = admit(app, headers=websocket.headers, query=websocket.query_params)
    except Refused as refused:
        # Accept first: a close before the handshake is an HTTP 403 without our code.
        await websocket.accept()
        await _close(websocket, refused.code, refused.error.message)
        return
    await websocket.accept()
    try:
        session = open_session(
            app,
            principal,
            after=after,
            transport="ws",
            user_agent=websocket.headers.get("user-agent"),
        )
    except Refused as refused:
        await _close(websocket, refused.code, refused.error.message)
        return
    settings = app.settings
    bound_socket(
        websocket.scope,
        write_limit=settings.outbox_bytes,
        frame_rate=settings.inbound_rate,
        frame_burst=settings.inbound_burst,
    )
    writer = direct_writer(websocket.scope, limit=settings.outbox_bytes)
    if writer is not None:
        session.conn.write_directly(writer)
    await _serve(websocket, session, after)


async def _serve(websocket: WebSocket, session: Session, after: str | None) -> None:
    conn = session.conn
    settings = session.app.settings
    heartbeat = protocol.Heartbeat(interval=settings.heartbeat)
    tasks: list[asyncio.Task[Any]] = []
    try:
        try:
            await session.start(after)
        except TidingsError as exc:
            log.warning("connection %s could not start: %s", conn.id, exc, extra=conn.log_extra)
            conn.close(CloseCode.SERVICE_RESTART, "temporarily unavailable")
        tasks = [
            asyncio.create_task(_read(websocket, session, heartbeat)),
            asyncio.create_task(session.tick_forever(heartbeat, silence_kills=True)),
        ]
        if not conn.writes_directly:
            tasks.append(asyncio.create_task(_write(websocket, session)))
        closed = asyncio.create_task(conn.wait_closed())
        await asyncio.wait([*tasks, closed], return_when=asyncio.FIRST_COMPLETED)
        tasks.append(closed)
        for task in tasks:
            if task.done() and not task.cancelled() and _unexpected(task.exception()):
                log.error(
                    "connection %s failed", conn.id, exc_info=task.exception(), extra=conn.log_extra
                )
                conn.close(1011, "internal error")
    finally:
        await cancel(*tasks)
        try:
            if conn.close_code is not None:
                await _close(websocket, conn.close_code, conn.close_reason)
            # A closing socket still holds its buffers: it keeps its slot until gone.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2 * CLOSE_TIMEOUT):
                    await socket_gone(websocket.scope)
        finally:
            session.finish()


def _unexpected(exc: BaseException | None) -> bool:
    return exc is not None and not isinstance(exc, ConnectionClosed | WebSocketDisconnect | OSError)


async def _write(websocket: WebSocket, session: Session) -> None:
    conn = session.conn
    while True:
        _, frame = await conn.next_frame()
        await websocket.send_text(frame.decode())


async def _read(websocket: WebSocket, session: Session, heartbeat: protocol.Heartbeat) -> None:
    conn = session.conn
    settings = session.app.settings
    bucket = protocol.TokenBucket(rate=settings.inbound_rate, burst=settings.inbound_burst)
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            # 4008 and 4010 come from the protocol layer (control-frame flood, stalled
            # reader): keep them, so the connection is counted for what it was.
            code = message.get("code")
            if code in (CloseCode.RATE_LIMITED, CloseCode.SLOW_CONSUMER):
                conn.close(code, message.get("reason") or "")
            else:
                conn.close(CloseCode.GOING_AWAY, "client went away")
            _mark_gone(websocket)
            return
        data: str | bytes = message.get("text") or message.get("bytes") or b""
        heartbeat.heard()
        conn.heard_at = time.time()
        size = len(data.encode()) if isinstance(data, str) else len(data)
        if size > settings.max_frame_bytes:
            conn.close(CloseCode.MESSAGE_TOO_BIG, "frame too large")
            return
        if not bucket.allow():
            conn.close(CloseCode.RATE_LIMITED, "rate limited")
            return
        try:
            request = protocol.parse(data)
        except protocol.ProtocolError as exc:
            conn.send(exc.frame())
            continue
        reply = await session.answer(request)
        if reply is not None:
            conn.send(reply)


def _mark_gone(websocket: WebSocket) -> None:
    # The peer closed: there is nobody to send a close frame to.
    websocket.application_state = WebSocketState.DISCONNECTED


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    reason_bytes = reason.encode()[:120]
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await websocket.close(code, reason_bytes.decode(errors="ignore"))
    except Exception as exc:  # the client may already be gone or not reading
        log.debug("closing %s failed: %r", code, exc)
