"""A small keep-alive HTTP/1.1 client on asyncio.Protocol: one request in flight per connection.

Fast enough to push tens of thousands of POSTs per second from one process, which
httpx cannot do on a 2-core machine shared with the server under test.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from bench.wsclient import bound_socket


class HTTPError(Exception):
    """The connection failed or closed before a full response."""


class HTTPConn(asyncio.Protocol):
    """One keep-alive connection; :meth:`request` returns (status, body)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HTTPError(f"connection lost: {exc}"))

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, bytes]]:
        if self.closed or self.transport is None:
            raise HTTPError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self.buf += data
        parsed = parse_response(self.buf)
        if parsed is None:
            return
        status, body, used, close = parsed
        del self.buf[:used]
        if close and self.transport is not None:
            self.closed = True
            self.transport.close()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((status, body))


def parse_response(buf: bytearray) -> tuple[int, bytes, int, bool] | None:
    """(status, body, bytes used, connection-close) for a complete response, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    status = int(head[9:12])
    close = b"\r\nconnection: close" in head
    start = end + 4
    cl = head.find(b"\r\ncontent-length:")
    if cl >= 0:
        line_end = head.find(b"\r\n", cl + 2)
        length = int(head[cl + 17 : line_end if line_end >= 0 else None])
        if len(buf) < start + length:
            return None
        return status, bytes(buf[start : start + length]), start + length, close
    if b"\r\ntransfer-encoding: chunked" in head:
        body = bytearray()
        pos = start
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
            chunk_start = line_end + 2
            if len(buf) < chunk_start + size + 2:
                return None
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", line_end)
                if trailer_end < 0:
                    return None
                return status, bytes(body), trailer_end + 4, close
            body += buf[chunk_start : chunk_start + size]
            pos = chunk_start + size + 2
    if status in (204, 304) or 100 <= status < 200:
        return status, b"", start, close
    return None  # body delimited by close: not supported (servers here do not use it)


class HTTPPool:
    """A fixed set of keep-alive connections spread over endpoints, handed out in turn."""

    def __init__(self, endpoints: Sequence[tuple[str, int]], size: int, source: str = "127.0.0.1"):
        self.endpoints = list(endpoints)
        self.size = size
        self.source = source
        self.idle: asyncio.Queue[tuple[HTTPConn, tuple[str, int]]] = asyncio.Queue()
        self._rr = itertools.cycle(range(len(self.endpoints)))

    async def _connect(self, endpoint: tuple[str, int]) -> HTTPConn:
        loop = asyncio.get_running_loop()
        sock = bound_socket(self.source)
        try:
            async with asyncio.timeout(10):
                await loop.sock_connect(sock, endpoint)
                _, proto = await loop.create_connection(HTTPConn, sock=sock)
        except BaseException:
            sock.close()
            raise
        return proto

    async def start(self) -> None:
        for i in range(self.size):
            ep = self.endpoints[i % len(self.endpoints)]
            self.idle.put_nowait((await self._connect(ep), ep))

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        max_wait: float = 10.0,
    ) -> tuple[int, bytes]:
        """Send one request on an idle connection (reconnecting if it was closed)."""
        conn, ep = await self.idle.get()
        try:
            if conn.closed:
                conn = await self._connect(ep)
            extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
            raw = (
                f"{method} {path} HTTP/1.1\r\nHost: {ep[0]}:{ep[1]}\r\n{extra}"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            async with asyncio.timeout(max_wait):
                return await conn.request(raw)
        except TimeoutError:
            conn.closed = True
            if conn.transport is not None:
                conn.transport.abort()
            raise
        finally:
            self.idle.put_nowait((conn, ep))

    def close(self) -> None:
        while not self.idle.empty():
            conn, _ = self.idle.get_nowait()
            if conn.transport is not None:
                conn.transport.close()
