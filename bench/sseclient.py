"""A lean asyncio.Protocol Server-Sent Events client for the SSE memory and latency phase.

Like :mod:`bench.wsclient`: each stream records what it receives into a shared
:class:`~bench.wsclient.Sink` (receive time, stream index, the event's JSON ``data``)
and does nothing else on the hot path. ``ready`` resolves with the welcome event.
"""

from __future__ import annotations

import asyncio
import time

from bench.wsclient import Sink, open_client


class SSEClient(asyncio.Protocol):
    """One ``GET /api/v1/me/stream``: chunked HTTP/1.1, events split on blank lines."""

    __slots__ = ("body", "buf", "idx", "ready", "request", "sink", "started", "transport")

    def __init__(self, idx: int, sink: Sink, request: bytes, ready: asyncio.Future[bytes]):
        self.idx = idx
        self.sink = sink
        self.request = request
        self.ready = ready
        self.buf = bytearray()  # chunked transfer encoding, undecoded
        self.body = bytearray()  # the event stream
        self.started = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buf = self.buf
        buf += data
        if not self.started:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            if b" 200 " not in status:
                self._fail(f"stream refused: {status.decode(errors='replace')}")
                return
            self.started = True
            del buf[: end + 4]
        while True:  # de-chunk
            line_end = buf.find(b"\r\n")
            if line_end < 0:
                break
            size = int(bytes(buf[:line_end]).split(b";")[0] or b"0", 16)
            if len(buf) < line_end + 2 + size + 2:
                break
            self.body += buf[line_end + 2 : line_end + 2 + size]
            del buf[: line_end + 2 + size + 2]
        body = self.body
        while (end := body.find(b"\n\n")) >= 0:
            event = bytes(body[:end])
            del body[: end + 2]
            for line in event.split(b"\n"):
                if line.startswith(b"data: "):
                    self._event(line[6:], now)

    def _event(self, payload: bytes, now: float) -> None:
        if len(payload) < 40 and b'"ping"' in payload:
            return
        if not self.ready.done():
            self.ready.set_result(payload)
            return
        self.sink.frames.append((now, self.idx, payload))
        self.sink.count += 1

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))

    def connection_lost(self, exc: Exception | None) -> None:
        self.sink.closed += 1
        self._fail(f"connection lost: {exc}")


def stream_request(host: str, port: int, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()


async def open_one_sse(
    idx: int,
    sink: Sink,
    endpoint: tuple[str, int],
    source: str,
    path: str,
    max_wait: float,
) -> SSEClient:
    host, port = endpoint
    return await open_client(
        lambda ready: SSEClient(idx, sink, stream_request(host, port, path), ready),
        endpoint,
        source,
        max_wait,
    )
