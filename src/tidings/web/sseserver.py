"""Server-Sent Events at ``GET /api/v1/me/stream`` without ASGI: one small object per stream.

Served through ASGI (:mod:`tidings.web.sse`), an idle stream kept uvicorn's HTTP
protocol object and its httptools parser, the ASGI request/response cycle, Starlette's
``StreamingResponse`` with its anyio task group and two tasks: 37.5 KiB per stream at
2,000 streams (``python -m bench``, ``sse``); served here, 4.5 KiB. The HTTP protocol
``tidings serve`` runs (:class:`~tidings.web.httpserver.HttpProtocol`) hands each
request to :func:`take` once its headers are complete, which serves it if it is ours:

- Admission is the ASGI endpoint's (:func:`tidings.web.sse.open_stream`). A request it
  refuses is left to the ASGI application, which refuses it again the same way: one
  definition of the error responses, their headers and the middleware around them.
- The response head is the ASGI endpoint's, byte for byte: uvicorn's default headers,
  the stream's headers as Starlette builds them, the CORS headers the middleware would
  add (:func:`tidings.web.cors.simple_headers`), chunked transfer encoding. It leaves
  with the first events (the welcome): one write to the socket, not two.
- Then the socket is handed to a :class:`DirectStream` (``transport.set_protocol``): the
  parser and uvicorn's protocol object are dropped. Frames are written as they are
  offered (``Connection.write_directly``), one chunk each, encoded once per fan-out;
  pings and token expiry come from the process's :class:`TimerWheel`; the start (welcome,
  resume, topic replay: the store) is one short task. Nothing else runs per stream.

Bounds are the WebSocket transport's: a client more than ``TIDINGS_OUTBOX_BYTES``
behind is sent the ``close`` event (4010) and dropped; a stream that ends (its ``close``
event and the last chunk written) closes its socket, reset when it does not drain in
good time. The stream keeps its slot in the user's cap until its socket is gone.

Where this cannot be used, the ASGI endpoint serves the stream: other ASGI servers,
``TIDINGS_SSE_TRANSPORT=asgi``, a ``--root-path``, a request pipelined behind another.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import httptools
from fastapi.responses import StreamingResponse
from starlette.datastructures import Headers
from uvicorn.protocols.http.httptools_impl import STATUS_LINE
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from tidings import protocol, telemetry
from tidings.errors import CloseCode, TidingsError
from tidings.web import cors, sse
from tidings.web.session import Refused, Session
from tidings.web.wsdirect import Draining, reset
from tidings.web.wsserver import CLOSE_TIMEOUT, STALL, Shared, shared_state

if TYPE_CHECKING:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("tidings.realtime")

_PATH = sse.PATH.encode()
_LAST_CHUNK = b"0\r\n\r\n"


class _Template:
    """What every stream's response head shares, built once per process."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.cors = cors.for_settings(shared.settings)
        template = StreamingResponse(iter(()), media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)
        self.headers: list[tuple[bytes, bytes]] = list(template.raw_headers)


_template: _Template | None = None


def _shared_template(http: HttpToolsProtocol) -> _Template:
    global _template
    shared = shared_state(http.app)
    if _template is None or _template.shared is not shared:
        _template = _Template(shared)
    return _template


def take(http: HttpToolsProtocol) -> DirectStream | None:
    """Serve the request whose headers ``http`` just parsed, if it opens an event stream
    this transport serves; None leaves it to the ASGI application (any other request, a
    refused stream, ``TIDINGS_SSE_TRANSPORT=asgi``)."""
    if not http.url.startswith(_PATH):
        return None
    parser = http.parser
    if parser.get_method() != b"GET" or parser.should_upgrade() or http.root_path:
        return None
    if http.cycle is not None and not http.cycle.response_complete:
        return None  # pipelined behind a response in progress: uvicorn queues it
    url = httptools.parse_url(http.url)
    if url.path != _PATH:
        return None
    template = _shared_template(http)
    shared = template.shared
    if shared.settings.sse_transport != "direct":
        return None
    request_headers = Headers(raw=http.headers)
    query = url.query or b""
    params = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
    try:
        session, after, replay = sse.open_stream(shared.app, request_headers, params)
    except (Refused, TidingsError):
        return None  # the ASGI endpoint answers it, the same way
    try:
        stream = _serve(http, template, request_headers, query, session)
    except BaseException:
        session.finish()  # its slot in the user's cap
        raise
    stream.start(after, replay)
    return stream


def _serve(
    http: HttpToolsProtocol,
    template: _Template,
    request_headers: Headers,
    query: bytes,
    session: Session,
) -> DirectStream:
    """Log and count the response as uvicorn and the app would; hand the socket over."""
    parser = http.parser
    version = parser.get_http_version()
    keep_alive = version != "1.0" and parser.should_keep_alive()
    response_head = _response_head(http, template, request_headers, keep_alive)
    if http.access_log:  # as uvicorn logs every response (secrets redacted there)
        scope: Any = {"client": http.client, "path": sse.PATH, "query_string": query}
        http.access_logger.info(
            '%s - "%s %s HTTP/%s" %d',
            get_client_addr(scope),
            "GET",
            get_path_with_query_string(scope),
            version,
            200,
        )
    telemetry.count_request("GET", sse.PATH, 200)
    stream = DirectStream(
        template.shared, http.server_state, http.transport, session, response_head
    )
    http.connections.discard(http)
    http.transport.set_protocol(stream)
    return stream


def _response_head(
    http: HttpToolsProtocol, template: _Template, request_headers: Headers, keep_alive: bool
) -> bytes:
    """The status line and headers uvicorn writes for the ASGI endpoint's response."""
    headers = template.headers
    if template.cors is not None:
        headers = cors.simple_headers(template.cors, headers, request_headers)
    lines = [STATUS_LINE[200]]
    for name, value in [*http.server_state.default_headers, *headers]:
        lines += [name, b": ", value, b"\r\n"]
    if not keep_alive:
        lines.append(b"connection: close\r\n")
    lines.append(b"transfer-encoding: chunked\r\n\r\n")
    return b"".join(lines)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


_cache: tuple[bytes, str | None, bytes] = (b"", None, b"")


def event_chunk(frame: bytes, position: str | None) -> bytes:
    """One event as one chunk; the last one built is reused (a fan-out's frame and
    position are the same objects for every stream)."""
    global _cache
    cached_frame, cached_position, cached = _cache
    if frame is cached_frame and position == cached_position:
        return cached
    chunk = _chunk(protocol.sse_event(frame, event_id=position))
    _cache = (frame, position, chunk)
    return chunk


class DirectStream(Draining, asyncio.Protocol):
    """One event stream, from its response head to its socket's end."""

    __slots__ = (
        "_backlog",
        "_closing_since",
        "_head",
        "_lost",
        "_server_state",
        "_shared",
        "_starting",
        "_worker",
        "heartbeat",
        "session",
        "transport",
        "wheel_slot",
    )

    def __init__(
        self,
        shared: Shared,
        server_state: Any,
        transport: asyncio.Transport,
        session: Session,
        head: bytes,
    ) -> None:
        self._shared = shared
        self._head = head  # written with the first events: one write, not two
        self._server_state = server_state
        self.transport = transport
        self.session = session
        self.heartbeat = protocol.Heartbeat(interval=shared.settings.heartbeat)
        self.wheel_slot: int | None = None
        self._starting: list[bytes] | None = []  # events offered while starting
        self._worker: asyncio.Task[None] | None = None
        self._closing_since: float | None = None
        self._backlog = 0
        self._lost = False
        server_state.connections.add(self)
        session.conn.write_directly(self._write)
        session.conn.on_close(self._closed_by_app)

    def __repr__(self) -> str:
        return f"<DirectStream {self.session.conn.id}>"

    def start(self, after: str | None, replay: protocol.Subscribe | None) -> None:
        self._worker = self._shared.loop.create_task(self._start(after, replay))

    # -- asyncio.Protocol -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """A client has nothing to say on an event stream: ignored."""

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._server_state.connections.discard(self)
        self._shared.wheel.cancel(self)
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
        self._starting = None
        self.session.finish()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: tell the client to come back (1012)."""
        self.session.conn.close(CloseCode.SERVICE_RESTART, "restarting")

    # -- the stream -------------------------------------------------------------------------

    async def _start(self, after: str | None, replay: protocol.Subscribe | None) -> None:
        session = self.session
        try:
            failed = await sse.start_stream(session, after, replay)
        except Exception:
            conn = session.conn
            log.exception("connection %s failed to start", conn.id, extra=conn.log_extra)
            failed = b""
        finally:
            self._worker = None
        events, self._starting = self._starting, None
        if events is None or self._closing_since is not None:
            return  # gone, or closed meanwhile (its close event is written)
        if failed is not None:
            self._end(failed or None)
            return
        self.transport.write(self._take_head() + _chunk(sse.RETRY + b"".join(events)))
        self.on_timer()  # files the stream for its first ping, or its token's expiry

    def _write(self, frame: bytes, position: str | None) -> bool:
        """The connection's direct writer: False when the client is too far behind."""
        if self._starting is not None:
            self._starting.append(protocol.sse_event(frame, event_id=position))
            return True
        transport = self.transport
        if self._closing_since is not None or transport.is_closing():
            return True  # ending already
        if transport.get_write_buffer_size() > self._shared.settings.outbox_bytes:
            return False
        transport.write(event_chunk(frame, position))
        return True

    def _closed_by_app(self) -> None:
        """``Connection.close`` was called: the ``close`` event, then the end."""
        if self._lost or self._closing_since is not None:
            return
        self._starting = None
        conn = self.session.conn
        self._end(sse.close_event(conn.close_code, conn.close_reason))

    def _end(self, last: bytes | None) -> None:
        """Write ``last`` and the last chunk, close the socket (aborted if it lingers)."""
        transport = self.transport
        self._closing_since = self._shared.loop.time()
        if not transport.is_closing():
            tail = _chunk(last) + _LAST_CHUNK if last else _LAST_CHUNK
            transport.write(self._take_head() + tail)
            transport.close()
        self._backlog = transport.get_write_buffer_size()
        self._shared.wheel.schedule(self, STALL)

    def _take_head(self) -> bytes:
        head, self._head = self._head, b""
        return head

    # -- the timer wheel --------------------------------------------------------------------

    def on_timer(self) -> None:
        if self._lost:
            return
        wheel = self._shared.wheel
        if self._closing_since is not None:
            overdue = self._shared.loop.time() - self._closing_since >= CLOSE_TIMEOUT
            if overdue or not self._progressed():
                reset(self.transport)
            else:
                wheel.schedule(self, STALL)
            return
        wait = self.session.tick(self.heartbeat, silence_kills=False)
        if wait is not None and self._closing_since is None:
            wheel.schedule(self, wait)
