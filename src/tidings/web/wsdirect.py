"""Write server frames straight to the socket, encoded once per fan-out.

Measured on a 10,000-connection broadcast, a frame sent through Starlette, uvicorn
and the websockets library cost four times what writing it to the transport costs:
a task wake-up per connection, a bytes→str→bytes round trip, and a frame built anew
for every socket. Server frames are unmasked, so the bytes of a frame are the same for
every client: :func:`text_frame` builds them once per payload and the hub's fan-out
hands the same payload object to every connection.

Only data frames take this path, and only on uvicorn's websockets-sansio protocol
(``tidings serve`` runs its bounded subclass, :mod:`tidings.web.wsprotocol`), which
keeps no state about data frames it did not send. Handshake, close and control frames
still go through the ASGI interface. On any other server the transport falls back to
the ASGI ``send``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.protocol import TokenBucket

RAW_SEND = "tidings.raw_send"
"""Scope key under which :class:`ExposeRawSend` leaves the server's own ``send``."""


class LastFrame:
    """The last text frame built, with its payload.

    A fan-out hands the same payload object to every connection, so every write after
    the first reuses the frame. The direct transport's writer tests ``payload is
    LAST_FRAME.payload`` itself rather than calling :func:`text_frame`: a call less per
    delivery (see docs/DESIGN.md, "A broadcast against the ceiling").
    """

    __slots__ = ("frame", "payload")

    def __init__(self) -> None:
        self.payload = b""
        self.frame = b"\x81\x00"

    def build(self, payload: bytes) -> bytes:
        """Frame ``payload`` (unmasked, final, text) and remember it."""
        size = len(payload)
        if size < 126:
            header = bytes((0x81, size))
        elif size < 65_536:
            header = struct.pack("!BBH", 0x81, 126, size)
        else:
            header = struct.pack("!BBQ", 0x81, 127, size)
        self.payload = payload
        self.frame = header + payload
        return self.frame


LAST_FRAME = LastFrame()


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame; the last one built is reused."""
    last = LAST_FRAME
    return last.frame if payload is last.payload else last.build(payload)


class ExposeRawSend:
    """ASGI middleware: remember the server's ``send`` before the framework wraps it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[RAW_SEND] = send
        await self.app(scope, receive, send)


def _sansio_protocol(scope: Scope) -> Any:
    """uvicorn's websockets-sansio protocol object behind this WebSocket, or None."""
    protocol: Any = getattr(scope.get(RAW_SEND), "__self__", None)
    names = {cls.__name__ for cls in type(protocol).__mro__}
    return protocol if "WebSocketsSansIOProtocol" in names else None


def direct_writer(scope: Scope, *, limit: int) -> Callable[[bytes, str | None], bool] | None:
    """A non-blocking writer for an accepted WebSocket, or None if this server has none.

    The writer returns False when more than ``limit`` bytes wait in the transport's
    buffer: the client is not reading, and the caller drops it as a slow consumer.
    """
    protocol = _sansio_protocol(scope)
    transport = getattr(protocol, "transport", None)
    if transport is None or not getattr(protocol, "handshake_complete", False):
        return None

    def write(payload: bytes, _position: str | None = None) -> bool:
        if protocol.close_sent or transport.is_closing():
            return True  # closing already: the close path reports how it ended
        if transport.get_write_buffer_size() > limit:
            return False
        transport.write(text_frame(payload))
        return True

    return write


class Draining:
    """A protocol whose socket must show progress: its ``transport`` and ``_backlog``
    (the write buffer's size at the last look) are the subclass's."""

    __slots__ = ()
    transport: Any
    _backlog: int

    def _progressed(self) -> bool:
        """Whether the write buffer shrank (or emptied) since the last look."""
        size = self.transport.get_write_buffer_size()
        progressed = size == 0 or size < self._backlog
        self._backlog = size  # type: ignore[misc]  # a slot of each subclass (see above)
        return progressed


def reset(transport: Any) -> None:
    """Close now, dropping what is unsent, the kernel's send queue included: a reset,
    not a FIN queued behind data a client is not reading."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def bound_socket(scope: Scope, *, write_limit: int, frame_rate: float, frame_burst: int) -> None:
    """Bound an accepted WebSocket's whole write buffer and its control frames.

    Only on :class:`~tidings.web.wsprotocol.BoundedWebSocketProtocol` (``tidings
    serve``); elsewhere nothing happens.
    """
    bound = getattr(_sansio_protocol(scope), "bound", None)
    if bound is not None:
        bound(
            write_limit=write_limit,
            control_frames=TokenBucket(rate=frame_rate, burst=frame_burst),
        )


async def socket_gone(scope: Scope) -> None:
    """Return once the WebSocket's socket is really closed.

    Only :class:`~tidings.web.wsprotocol.BoundedWebSocketProtocol` says when that is
    (elsewhere this returns at once); it aborts a socket that does not go away by itself
    within its close timeout, so this wait ends.
    """
    protocol = _sansio_protocol(scope)
    gone: asyncio.Event | None = getattr(protocol, "gone", None)
    if gone is not None and getattr(protocol, "limit", None) is not None:
        await gone.wait()
