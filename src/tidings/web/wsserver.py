"""The WebSocket transport at ``/ws`` without ASGI: one small object per connection.

uvicorn hands every WebSocket upgrade to the protocol class it is configured with
(``tidings serve`` passes :data:`IMPORT_PATH`, ``TIDINGS_WS_TRANSPORT=direct``). This
class speaks RFC 6455 through the ``websockets`` library's sans-I/O
:class:`~websockets.server.ServerProtocol` (handshake, framing, masking, close, ping)
and the tidings protocol through :class:`~tidings.web.session.Session` and
:class:`~tidings.connection.Connection`, the same objects the ASGI endpoint
(:mod:`tidings.web.ws`) drives. What it leaves out is what made an idle connection cost
47 KB: the ASGI scope and message dicts, Starlette's routing, and the four tasks.

- No task while idle. Bytes in are parsed in ``data_received``; requests answered
  without awaiting (ping, pong) are answered there; one that needs the database gets a
  short-lived task, which also answers whatever arrives meanwhile, in order.
- Frames out go straight to the transport, encoded once per fan-out
  (:func:`~tidings.web.wsdirect.text_frame`); ``Connection.close`` calls back here.
- Heartbeats, token expiry and close deadlines come from one :class:`TimerWheel` per
  process, not a timer per connection.
- The handshake request and response are dropped once the connection is open.
- Upgrades to any other path go to the ASGI application, through uvicorn's own protocol
  (:class:`~tidings.web.wsprotocol.BoundedWebSocketProtocol`).

Bounds are the ASGI transport's: a client more than ``TIDINGS_OUTBOX_BYTES`` behind is
closed with 4010 (at once when a notification does not fit, after :data:`STALL` seconds
without progress when pongs and control frames pile up, reading nothing meanwhile);
frames over ``TIDINGS_MAX_FRAME_BYTES`` close with 1009, frames faster than the inbound
rate with 4008; a closing socket that does not go away is aborted. The connection keeps
its slot in the user's cap until its socket is gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, unquote

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol

from tidings import protocol
from tidings.errors import CloseCode, TidingsError
from tidings.web.session import Refused, Session, admit, open_session
from tidings.web.timerwheel import shared_wheel
from tidings.web.wsdirect import LAST_FRAME, Draining, reset, text_frame
from tidings.web.wsprotocol import BoundedWebSocketProtocol

if TYPE_CHECKING:
    from tidings.app import App

IMPORT_PATH = "tidings.web.wsserver:DirectWebSocketProtocol"
PATH = "/ws"
STALL = 2.0
"""Seconds a write buffer may make no progress while over its limit, or while closing."""
CLOSE_TIMEOUT = 10.0
"""Seconds a closing socket may take to go away, however slowly it drains."""
HANDSHAKE_HEADERS = frozenset(
    {
        "connection",
        "upgrade",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
    }
)
"""What the library reads to accept a handshake (tidings checks the origin itself)."""
DEAF_CODES = frozenset({CloseCode.RATE_LIMITED, CloseCode.SLOW_CONSUMER})
"""Closes after which nothing more is read from the client."""

log = logging.getLogger("tidings.realtime")
_quiet = logging.getLogger("tidings.websockets")  # the library's per-connection info lines
_quiet.setLevel(logging.WARNING)
handshakes = logging.getLogger("uvicorn.error")
"""Where uvicorn's own WebSocket protocols log each handshake (secrets redacted there)."""


class Shared:
    """What every connection of the process shares: the application and the wheel."""

    def __init__(self, app: App, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.settings = app.settings
        self.loop = loop
        self.wheel = shared_wheel()


_shared: Shared | None = None


def shared_state(asgi_app: Any) -> Shared:
    """The process's :class:`Shared`, found once behind uvicorn's middleware wrappers."""
    global _shared
    loop = asyncio.get_running_loop()
    if _shared is None or _shared.loop is not loop:
        app = asgi_app
        while getattr(getattr(app, "state", None), "tidings", None) is None:
            app = app.app  # uvicorn's proxy-headers (and other) middleware
        _shared = Shared(app.state.tidings, loop)
    return _shared


class DirectWebSocketProtocol(Draining, asyncio.Protocol):
    """One WebSocket connection, from the upgrade request to the socket's end."""

    __slots__ = (
        "_app_state",
        "_asgi",
        "_backlog",
        "_bucket",
        "_closing_since",
        "_config",
        "_control",
        "_deaf",
        "_fragments",
        "_fragments_text",
        "_greeting",
        "_lost",
        "_over",
        "_queue",
        "_raw",
        "_server_state",
        "_shared",
        "_worker",
        "heartbeat",
        "session",
        "transport",
        "wheel_slot",
        "ws",
    )

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any]) -> None:
        if not config.loaded:
            config.load()
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._shared = shared_state(config.loaded_app)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.ws: ServerProtocol | None = ServerProtocol(
            max_size=self._shared.settings.max_frame_bytes, logger=_quiet
        )
        self.session: Session | None = None
        self.heartbeat: protocol.Heartbeat | None = None
        self.wheel_slot: int | None = None
        self._raw: bytes | None = b""  # the upgrade request, until it is parsed
        self._asgi: BoundedWebSocketProtocol | None = None
        self._fragments: list[bytes] | None = None
        self._fragments_text = False
        self._bucket: protocol.TokenBucket | None = None
        self._control: protocol.TokenBucket | None = None
        self._queue: deque[protocol.Request | bytes] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._over = False  # the write buffer is over the limit: reading is paused
        self._backlog = 0
        self._closing_since: float | None = None
        self._deaf = False
        self._lost = False
        self._greeting = False

    def __repr__(self) -> str:
        conn = self.session.conn.id if self.session is not None else "-"
        return f"<DirectWebSocketProtocol {conn}>"

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._server_state.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._asgi is not None:
            self._asgi.data_received(data)
            return
        ws = self.ws
        if ws is None or self._deaf or ws.state is State.CLOSED:
            return
        ws.receive_data(data)
        if self._raw is not None:
            self._raw += data
            for event in ws.events_received():
                if isinstance(event, Request):
                    raw, self._raw = self._raw, None
                    if self.serves(event.path):
                        self._upgrade(event, _first_values(event.headers.raw_items()))
                    else:
                        self._hand_to_asgi(raw)
                    return
        else:
            for event in ws.events_received():
                self._frame(event)  # type: ignore[arg-type]
                if self._deaf or self._lost:
                    break
            if ws.parser_exc is not None and self.session is not None:
                close = ws.close_sent
                code = close.code if close is not None else CloseCode.PROTOCOL_ERROR
                self.session.conn.close(code, close.reason if close is not None else "")
        self._flush()

    def pause_writing(self) -> None:
        if self._asgi is not None:
            self._asgi.pause_writing()
            return
        self._over = True
        if not self.transport.is_closing():
            self.transport.pause_reading()
        if self._closing_since is None:
            self._backlog = self.transport.get_write_buffer_size()
            self._shared.wheel.schedule(self, STALL)

    def resume_writing(self) -> None:
        if self._asgi is not None:
            self._asgi.resume_writing()
            return
        self._over = False
        if not self._deaf and not self.transport.is_closing():
            self.transport.resume_reading()
        if self._closing_since is None and self.heartbeat is not None:
            self._shared.wheel.schedule(self, 0)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._asgi is not None:
            self._asgi.connection_lost(exc)
            return
        self._lost = True
        self._server_state.connections.discard(self)
        self._shared.wheel.cancel(self)
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
        if self.session is not None:
            self.session.finish()
        self.ws = None
        self._queue = None

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: tell the client to come back (1012)."""
        if self.session is not None:
            self.session.conn.close(CloseCode.SERVICE_RESTART, "restarting")
        elif not self._lost:
            self.transport.close()

    # -- the opening handshake --------------------------------------------------------------

    @staticmethod
    def serves(target: str) -> bool:
        """Whether an upgrade to this request target is ours (else the ASGI app's)."""
        return unquote(target.partition("?")[0]) == PATH

    def upgrade(self, target: str, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Take over an upgrade to :data:`PATH` that the HTTP protocol has parsed already
        (:mod:`tidings.web.httpserver`): no second parse of the request."""
        self._raw = None
        ours: dict[str, str] = {}
        handshake = Headers()
        for raw_name, raw_value in headers:  # lower-case names (uvicorn's)
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            ours.setdefault(name, value)
            if name in HANDSHAKE_HEADERS:
                handshake[name] = value
        self._upgrade(Request(target, handshake), ours)

    def _upgrade(self, request: Request, headers: dict[str, str]) -> None:
        """Answer the handshake; ``headers``: the request's, first value of each name."""
        query = request.path.partition("?")[2]
        ws = self.ws
        assert ws is not None
        response = ws.accept(request)
        ws.send_response(response)
        if response.status_code != 101:
            self._flush()
            return  # send_response ended the stream: the transport is closing
        # The 101 response waits in the library's output for the welcome frame: one write
        # to the socket, not two (a write is most of what a connect costs the server).
        self._greeting = True
        if handshakes.isEnabledFor(logging.INFO):  # as uvicorn's protocols do
            peer = self.transport.get_extra_info("peername")
            client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "-"
            handshakes.info('%s - "WebSocket %s" [accepted]', client, request.path)
        if not ws.reader.buffer:
            # The library's handshake parser stays suspended in its frame parser, holding
            # the request and its headers (2.5 KB) for the connection's life: start the
            # frame parser afresh instead (nothing of a frame has been read yet).
            ws.parser = Protocol.parse(ws)
            next(ws.parser)
        app = self._shared.app
        params = dict(parse_qsl(query, keep_blank_values=True))
        try:
            principal, after = admit(app, headers=headers, query=params)
            self.session = open_session(
                app,
                principal,
                after=after,
                transport="ws",
                user_agent=headers.get("user-agent"),
            )
        except Refused as refused:
            self._send_close(refused.code, refused.error.message)
            return
        settings = self._shared.settings
        conn = self.session.conn
        conn.write_directly(self._write)
        conn.on_close(self._closed_by_app)
        self.transport.set_write_buffer_limits(
            high=settings.outbox_bytes, low=settings.outbox_bytes // 2
        )
        self.heartbeat = protocol.Heartbeat(interval=settings.heartbeat)
        self._bucket = protocol.TokenBucket(
            rate=settings.inbound_rate, burst=settings.inbound_burst
        )
        self._worker = self._shared.loop.create_task(self._start(after))

    def _hand_to_asgi(self, raw: bytes) -> None:
        """Another path: uvicorn's ASGI WebSocket protocol serves it from the start."""
        self._server_state.connections.discard(self)
        self.ws = None
        self._asgi = BoundedWebSocketProtocol(
            config=self._config, server_state=self._server_state, app_state=self._app_state
        )
        self._asgi.connection_made(self.transport)
        self._asgi.data_received(raw)

    async def _start(self, after: str | None) -> None:
        session = self.session
        assert session is not None and self.heartbeat is not None
        conn = session.conn
        try:
            await session.start(after)
        except TidingsError as exc:
            log.warning("connection %s could not start: %s", conn.id, exc, extra=conn.log_extra)
            conn.close(CloseCode.SERVICE_RESTART, "temporarily unavailable")
            return
        except Exception:
            log.exception("connection %s failed to start", conn.id, extra=conn.log_extra)
            conn.close(1011, "internal error")
            return
        finally:
            self._worker = None
            self._flush()  # the 101 response, if no frame took it along
        if session.conn.closed:
            return
        self._shared.wheel.schedule(self, self.heartbeat.next_deadline())
        if self._queue:
            self._worker = asyncio.current_task()
            await self._answer_queued()

    # -- client frames ----------------------------------------------------------------------

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        data = cast(bytes, frame.data)  # the library's parser reads bytes
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._message(data, text=opcode is Opcode.TEXT)
            else:
                self._fragments = [data]
                self._fragments_text = opcode is Opcode.TEXT
        elif opcode is Opcode.CONT:
            assert self._fragments is not None  # the library checks continuation order
            self._fragments.append(data)
            if frame.fin:
                message, self._fragments = b"".join(self._fragments), None
                self._message(message, text=self._fragments_text)
        elif opcode is Opcode.PING or opcode is Opcode.PONG:
            # The library queued the pong; it goes out with the next flush.
            if self._control is None:
                settings = self._shared.settings
                self._control = protocol.TokenBucket(
                    rate=settings.inbound_rate, burst=settings.inbound_burst
                )
            if not self._control.allow():
                self._close_now(CloseCode.RATE_LIMITED, "rate limited")
                return
            if self.heartbeat is not None:
                self.heartbeat.heard()
        elif opcode is Opcode.CLOSE and self.session is not None:
            # The library queued the echo and the end of the stream.
            self.session.conn.close(CloseCode.GOING_AWAY, "client went away")

    def _message(self, data: bytes, *, text: bool) -> None:
        session = self.session
        if session is None or self.heartbeat is None or self._bucket is None:
            return  # refused at the handshake: only the close is awaited
        conn = session.conn
        self.heartbeat.heard()
        conn.heard_at = time.time()
        if not self._bucket.allow():
            conn.close(CloseCode.RATE_LIMITED, "rate limited")
            return
        if text and not data.isascii():
            try:
                data.decode()
            except UnicodeDecodeError:
                # Fail the connection (RFC 6455, 8.1): the close frame, then the socket,
                # without waiting for the client's echo.
                assert self.ws is not None
                self.ws.fail(CloseCode.INVALID_DATA, "invalid UTF-8")
                conn.close(CloseCode.INVALID_DATA, "invalid UTF-8")
                return
        item: protocol.Request | bytes
        try:
            item = protocol.parse(data)
        except protocol.ProtocolError as exc:
            item = exc.frame()
        if self._worker is not None:
            if self._queue is None:
                self._queue = deque()
            self._queue.append(item)  # answered in order, after the one in progress
            return
        if isinstance(item, bytes):
            conn.send(item)
            return
        immediate, reply = session.answer_at_once(item)
        if immediate:
            if reply is not None:
                conn.send(reply)
            return
        self._queue = deque((item,))
        self._worker = self._shared.loop.create_task(self._answer_queued())

    async def _answer_queued(self) -> None:
        """Answer queued requests in order; the task ends when the queue is empty."""
        session = self.session
        assert session is not None
        conn = session.conn
        try:
            while self._queue:
                item = self._queue.popleft()
                reply = item if isinstance(item, bytes) else await session.answer(item)
                if reply is not None:
                    conn.send(reply)
        except Exception:
            log.exception("connection %s failed", conn.id, extra=session.conn.log_extra)
            conn.close(1011, "internal error")
        finally:
            self._worker = None
            self._queue = None

    # -- server frames and closing ----------------------------------------------------------

    def _write(self, payload: bytes, _position: str | None = None) -> bool:
        """The connection's direct writer: False when the client is too far behind."""
        transport = self.transport
        if self._closing_since is not None or transport.is_closing():
            return True  # closing already: the close path reports how it ended
        # The buffer's high-water mark is the outbox limit: under it, pause_writing has
        # not been called (``_over``), so only a paused connection needs measuring.
        if self._over and transport.get_write_buffer_size() > self._shared.settings.outbox_bytes:
            return False
        if self._greeting:
            self._greeting = False
            assert self.ws is not None
            transport.write(b"".join(self.ws.data_to_send()) + text_frame(payload))
            return True
        last = LAST_FRAME  # text_frame, inline: this runs once per delivery
        transport.write(last.frame if payload is last.payload else last.build(payload))
        return True

    def _flush(self) -> None:
        """Write what the library has to send; end the stream when it says so."""
        ws = self.ws
        if ws is None or self._lost:
            return
        self._greeting = False
        output = ws.data_to_send()
        if not output:
            return
        data = b"".join(output)
        if data:
            self.transport.write(data)
        if output[-1] == b"":
            self.transport.close()
            self._closing()

    def _closed_by_app(self) -> None:
        """``Connection.close`` was called: send the close frame with its code."""
        conn = self.session.conn if self.session is not None else None
        if conn is None or self._lost:
            return
        code = conn.close_code or CloseCode.GOING_AWAY
        self._send_close(code, conn.close_reason)

    def _close_now(self, code: int, reason: str) -> None:
        if self.session is not None:
            self.session.conn.close(code, reason)
        else:
            self._send_close(code, reason)

    def _send_close(self, code: int, reason: str) -> None:
        ws = self.ws
        if ws is None or self._lost:
            return
        if ws.state is State.OPEN:
            ws.send_close(code, reason.encode()[:120].decode(errors="ignore"))
        if code in DEAF_CODES:
            # Whatever else it sends costs us parsing: read no more (aborted after STALL).
            self._deaf = True
            if not self.transport.is_closing():
                self.transport.pause_reading()
        self._flush()
        self._closing()

    def _closing(self) -> None:
        """From now on the socket must go away by itself in good time, or be aborted."""
        if self._closing_since is None and not self._lost:
            self._closing_since = self._shared.loop.time()
            self._backlog = self.transport.get_write_buffer_size()
            self._shared.wheel.schedule(self, STALL)

    # -- the timer wheel --------------------------------------------------------------------

    def on_timer(self) -> None:
        if self._lost:
            return
        wheel = self._shared.wheel
        if self._closing_since is not None:
            overdue = self._shared.loop.time() - self._closing_since >= CLOSE_TIMEOUT
            if overdue or self._deaf or not self._progressed():
                self._abort()
            else:
                wheel.schedule(self, STALL)
            return
        if self._over and not self._progressed():
            self._close_now(CloseCode.SLOW_CONSUMER, "too far behind")
            return
        if self.session is None or self.heartbeat is None:
            return
        wait = self.session.tick(self.heartbeat, silence_kills=True)
        if wait is not None and self._closing_since is None:
            wheel.schedule(self, min(wait, STALL) if self._over else wait)

    def _abort(self) -> None:
        reset(self.transport)


def _first_values(items: Any) -> dict[str, str]:
    """Request headers by lower-case name, the first value of each (as Starlette's)."""
    headers: dict[str, str] = {}
    for name, value in items:
        headers.setdefault(name.lower(), value)
    return headers
