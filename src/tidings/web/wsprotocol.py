"""uvicorn's sans-I/O WebSocket protocol, with a write buffer that cannot grow without bound.

Two things in uvicorn's protocol let one client hold the server's memory. It answers
pings itself, writing each pong whether or not the client reads: a client flooding
pings and never reading grows the transport's buffer for as long as it likes. And it
closes gracefully: a close frame waits behind everything the client has not read, then
the transport waits to flush, for ever, holding its buffer and the kernel's send queue.

Armed once the connection is accepted (:func:`tidings.web.wsdirect.bound_socket`, with
``TIDINGS_OUTBOX_BYTES`` and the inbound frame rate), this protocol bounds the whole
write buffer, control frames included, and what control frames may cost:

- pings and pongs count against the inbound frame rate (4008 beyond it): answering a
  flood of pings costs parsing even when the client reads its pongs;
- while more than ``limit`` bytes wait to be written it reads nothing from the socket,
  so nothing the client sends makes more output, and pongs beyond the limit are dropped;
- a buffer left over the limit without progress for :data:`STALL` seconds ends the
  connection with 4010 (slow consumer);
- a close frame is written even when the buffer is full (it is small and the last one),
  and the transport is aborted when the client does not read its way up to it: no
  progress for :data:`STALL` seconds, or not gone after :data:`CLOSE_TIMEOUT` (after a
  close of its own, for 4008 or 4010, it reads nothing more and waits :data:`STALL`);
- :attr:`gone` is set when the socket is really closed, so the application can count a
  closing connection against its user's cap until then.

``tidings serve`` runs uvicorn with this class (``ws=`` :data:`IMPORT_PATH`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame
from websockets.protocol import State

from tidings.errors import CloseCode
from tidings.protocol import TokenBucket
from tidings.web.wsdirect import Draining, reset

IMPORT_PATH = "tidings.web.wsprotocol:BoundedWebSocketProtocol"
STALL = 2.0
"""Seconds a write buffer may make no progress while over its limit, or while closing."""
CLOSE_TIMEOUT = 10.0
"""Seconds a closing socket may take to go away, however slowly it drains."""


class BoundedWebSocketProtocol(Draining, WebSocketsSansIOProtocol):
    """See the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit: int | None = None
        self.gone = asyncio.Event()
        self._over = False  # reading stopped: the write buffer is over the limit
        self._closing_since: float | None = None
        self._watch: asyncio.TimerHandle | None = None
        self._backlog = 0
        self._control: TokenBucket | None = None
        self._deaf = False  # reading stopped for good: the server has closed on the client

    def bound(self, *, write_limit: int, control_frames: TokenBucket) -> None:
        """From now on: keep the write buffer within about ``write_limit`` bytes, and
        close with 4008 a client sending pings and pongs faster than ``control_frames``."""
        self.limit = write_limit
        self._control = control_frames
        self.transport.set_write_buffer_limits(high=write_limit, low=write_limit // 2)

    # -- the transport's flow control ----------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.limit is not None and not self._over:
            self._over = True
            self.transport.pause_reading()
            if self._closing_since is None:
                self._schedule(self._check_stall)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._over:
            self._over = False
            if not self.read_paused and not self._deaf:
                self.transport.resume_reading()
            if self._closing_since is None:
                self._cancel_watch()

    async def receive(self) -> Any:
        message = await self.queue.get()
        if self.read_paused and self.queue.empty():
            self.read_paused = False
            if not self._over and not self._deaf:
                self.transport.resume_reading()
        return message

    def handle_ping(self) -> None:
        output = b"".join(self.conn.data_to_send())
        if self._control is not None and not self._control.allow():
            self._fail(CloseCode.RATE_LIMITED, "rate limited")
            return
        if self.limit is not None and (self._over or self.close_sent):
            return  # the client is not reading: it gets no more pongs than the limit allows
        self.transport.write(output)

    def handle_pong(self, event: Frame) -> None:
        if self._control is not None and not self._control.allow():
            self._fail(CloseCode.RATE_LIMITED, "rate limited")
            return
        super().handle_pong(event)

    # -- closing ---------------------------------------------------------------------------

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.close" and self.limit is not None:
            self.writable.set()  # a close frame may always be written: small, and the last
        await super().send(message)
        if self.close_sent and self.limit is not None:
            self._reap()

    def handle_close(self, event: Frame) -> None:
        super().handle_close(event)
        if self.limit is not None and not self.disconnected:
            self._reap()

    async def run_asgi(self) -> None:
        await super().run_asgi()
        if self.limit is not None and not self.disconnected:
            self._reap()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_watch()
        super().connection_lost(exc)
        self.gone.set()

    def _check_stall(self) -> None:
        """Over the limit: carry on while the client drains, else close with 4010."""
        self._watch = None
        if not self._over or self.disconnected or self._closing_since is not None:
            return
        if self._progressed():
            self._schedule(self._check_stall)
            return
        self._fail(CloseCode.SLOW_CONSUMER, "too far behind")

    def _fail(self, code: int, reason: str) -> None:
        """End the connection from here: tell the app, send a close, stop reading."""
        if self.close_sent or self.disconnected:
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        if self.conn.state is State.OPEN:
            self.conn.send_close(code, reason)
            self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self._deaf = True  # whatever else it sends costs us parsing: read no more
        self.transport.pause_reading()
        self._reap()

    def _reap(self) -> None:
        """Closing: abort the transport unless it goes away by itself in good time."""
        if self.disconnected:
            return
        if self._closing_since is None:
            self._closing_since = self.loop.time()
        if self.close_timer is not None and self.close_timer is not self._watch:
            self.close_timer.cancel()  # uvicorn's: a graceful close that may never end
        self._schedule(self._check_closing)

    def _check_closing(self) -> None:
        self._watch = self.close_timer = None
        if self.disconnected:
            return
        assert self._closing_since is not None
        overdue = self.loop.time() - self._closing_since >= CLOSE_TIMEOUT
        if overdue or self._deaf or not self._progressed():
            self._abort()
            return
        self._schedule(self._check_closing)

    def _abort(self) -> None:
        reset(self.transport)

    def _schedule(self, check: Any) -> None:
        self._cancel_watch()
        self._backlog = self.transport.get_write_buffer_size()
        self._watch = self.loop.call_later(STALL, check)
        if self._closing_since is not None:
            self.close_timer = self._watch  # uvicorn cancels it when the peer answers

    def _cancel_watch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
