"""uvicorn's HTTP/1.1 protocol, answering unparsable requests with our JSON error body.

A request uvicorn cannot parse (a control character in a header, a malformed
``Content-Length``) never reaches the ASGI app: uvicorn answers it 400 itself, in plain
text. :class:`HttpProtocol` writes that 400 as ``{"error": {"code", "message"}}`` like
every other error. It overrides one method of uvicorn's httptools protocol,
``send_400_response``; ``tests/test_api_input.py`` fails if uvicorn renames it.
``tidings serve`` runs it (``http=PROTOCOL``).

It also gives a request ``TIDINGS_HEADERS_TIMEOUT`` seconds to send its headers
(uvicorn waits for ever): a client that opens a connection, or starts a request or a
WebSocket upgrade, and never finishes the headers is closed and forgotten.

It sends a response's head and body in one write (:class:`HeadWithBody`): uvicorn
writes the status line and headers as soon as they are sent, and a small body after.

And it serves event streams (``GET /api/v1/me/stream``) without ASGI: once a request's
headers are complete, :func:`tidings.web.sseserver.take` may serve it and take the
socket over; this object and its parser are then dropped.
"""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tidings.settings import Settings
from tidings.web import sseserver
from tidings.web.wsserver import DirectWebSocketProtocol

PROTOCOL = "tidings.web.httpserver:HttpProtocol"
"""What ``uvicorn.run(http=...)`` takes to use this protocol."""
_headers_timeout: float | None = None


def headers_timeout() -> float:
    """Seconds from a connection (or a request's first byte) to the end of its headers."""
    global _headers_timeout
    if _headers_timeout is None:
        _headers_timeout = Settings().headers_timeout
    return _headers_timeout


class HttpProtocol(HttpToolsProtocol):
    _headers_timer: asyncio.TimerHandle | None = None
    _stream: sseserver.DirectStream | None = None
    """The event stream this connection became: its socket is no longer ours."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._stream is not None:
            self.parser = None  # type: ignore[assignment]  # it refers back to this object

    def on_message_begin(self) -> None:
        if self._stream is not None:
            return  # bytes after the stream's request, in the same read: not answered
        super().on_message_begin()
        if self._headers_timer is None:
            self._await_headers()

    def on_headers_complete(self) -> None:
        self._cancel_headers_timer()
        if self._stream is None:
            self._stream = sseserver.take(self)
        if self._stream is None:
            before = self.cycle
            super().on_headers_complete()
            if self.cycle is not before:  # a request to answer, not an upgrade
                self.cycle.transport = HeadWithBody(self.transport, self.loop)  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        if self._stream is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._stream is None:
            super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_headers_timer()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._cancel_headers_timer()
        self._headers_timer = self.loop.call_later(headers_timeout(), self._headers_overdue)

    def _headers_overdue(self) -> None:
        self._headers_timer = None
        if not self.transport.is_closing():
            self.transport.abort()

    def _cancel_headers_timer(self) -> None:
        if self._headers_timer is not None:
            self._headers_timer.cancel()
            self._headers_timer = None

    def handle_websocket_upgrade(self) -> None:
        """An upgrade to ``/ws`` goes to the direct transport as parsed here; uvicorn would
        write the request out again for the WebSocket protocol to parse a second time."""
        if self._stream is not None:
            return  # an upgrade sent behind a stream's request: the socket is the stream's
        target = self.url.decode("latin-1")
        if (
            self.ws_protocol_class is not DirectWebSocketProtocol
            or not DirectWebSocketProtocol.serves(target)
        ):
            super().handle_websocket_upgrade()
            return
        self.connections.discard(self)
        protocol = DirectWebSocketProtocol(
            config=self.config, server_state=self.server_state, app_state=self.app_state
        )
        protocol.connection_made(self.transport)
        self.transport.set_protocol(protocol)
        protocol.upgrade(target, self.scope["headers"])

    def send_400_response(self, msg: str) -> None:
        if self._stream is not None:
            return  # garbage sent behind a stream's request: the socket is the stream's
        body = orjson.dumps({"error": {"code": "bad_request", "message": msg}})
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


class HeadWithBody:
    """A response's transport, for uvicorn's request cycle: its first write (the status
    line and headers) waits for the next one (the body) and leaves with it.

    uvicorn writes a response's head when the application sends ``http.response.start``
    and the body in a second write: two syscalls and two loopback segments, each waking
    the client, for a 200-byte JSON answer. The head waits at most until the end of the
    current turn of the event loop, for a response whose body comes later (a stream).
    """

    __slots__ = ("_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = b""
        """The held head; b"" before the first write, None once it has left."""

    def write(self, data: bytes) -> None:
        head = self._head
        if head is None:
            self._transport.write(data)
        elif head:
            self._head = None
            self._transport.write(head + data)
        else:
            self._head = data
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        if self._head:
            self._transport.write(self._head)
        self._head = None

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()
