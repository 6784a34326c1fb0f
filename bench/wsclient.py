"""A lean asyncio.Protocol WebSocket client, built to hold 10,000+ connections in one process.

Each connection records what it receives into a shared :class:`Sink` with a receive
timestamp and does nothing else on the hot path; scenarios parse the JSON afterwards.
Application pings (``{"type":"ping"}``) and protocol pings are answered immediately.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench import wsframes

IP_BIND_ADDRESS_NO_PORT = 24
PONG = wsframes.client_frame(b'{"type":"pong"}')


@dataclass(slots=True)
class Sink:
    """Frames received by all connections: (perf_counter time, connection index, payload)."""

    frames: list[tuple[float, int, bytes]] = field(default_factory=list)
    count: int = 0
    closed: int = 0

    def reset(self) -> None:
        self.frames = []
        self.count = 0


class WSClient(asyncio.Protocol):
    """One WebSocket connection; ``ready`` resolves with the first (welcome) frame."""

    __slots__ = ("buf", "idx", "ready", "request", "sink", "transport", "upgraded")

    def __init__(self, idx: int, sink: Sink, request: bytes, ready: asyncio.Future[bytes]):
        self.idx = idx
        self.sink = sink
        self.request = request
        self.ready = ready
        self.buf = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        if self.upgraded and not self.buf and len(data) > 2 and data[0] == 0x81:
            n = data[1]
            if n < 126 and len(data) == n + 2:
                self._text(data[2:], time.perf_counter())
                return
            if n == 126 and len(data) == int.from_bytes(data[2:4], "big") + 4:
                self._text(data[4:], time.perf_counter())
                return
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            if b" 101 " not in status + b" ":
                self._fail(f"handshake refused: {status.decode(errors='replace')}")
                return
            self.upgraded = True
            del buf[: end + 4]
        frames, used = wsframes.parse(buf)
        if not frames:
            return
        del buf[:used]
        now = time.perf_counter()
        for op, payload in frames:
            if op == wsframes.OP_TEXT or op == wsframes.OP_BINARY:
                self._text(payload, now)
            elif op == wsframes.OP_PING:
                self.transport.write(wsframes.client_frame(payload, wsframes.OP_PONG))  # type: ignore[union-attr]
            elif op == wsframes.OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self._fail(f"closed by server with code {code}")
                self.transport.close()  # type: ignore[union-attr]

    def _text(self, payload: bytes, now: float) -> None:
        if len(payload) < 40 and b'"ping"' in payload:
            self.transport.write(PONG)  # type: ignore[union-attr]
        elif not self.ready.done():
            self.ready.set_result(payload)
        else:
            sink = self.sink
            sink.frames.append((now, self.idx, payload))
            sink.count += 1

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))

    def connection_lost(self, exc: Exception | None) -> None:
        self.sink.closed += 1
        self._fail(f"connection lost: {exc}")


def handshake(host: str, port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\nOrigin: http://{host}:{port}\r\n\r\n"
    ).encode()


def bound_socket(source: str) -> socket.socket:
    """A non-blocking TCP socket bound to ``source``; the port is chosen at connect time."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    sock.bind((source, 0))
    sock.setblocking(False)
    return sock


@dataclass
class Pool:
    """Open connections; ``clients[i]`` is None where connection i failed."""

    sink: Sink
    clients: list[Any]
    users: list[str]
    errors: dict[str, int]
    seconds: float

    @property
    def open_indices(self) -> list[int]:
        return [i for i, c in enumerate(self.clients) if c is not None]

    def close(self) -> None:
        for c in self.clients:
            if c is not None and c.transport is not None:
                c.transport.abort()


async def open_one(
    idx: int,
    sink: Sink,
    endpoint: tuple[str, int],
    source: str,
    path: str,
    max_wait: float,
) -> WSClient:
    host, port = endpoint
    return await open_client(
        lambda ready: WSClient(idx, sink, handshake(host, port, path), ready),
        endpoint,
        source,
        max_wait,
    )


P = TypeVar("P", bound=asyncio.Protocol)


async def open_client(
    make: Callable[[asyncio.Future[bytes]], P],
    endpoint: tuple[str, int],
    source: str,
    max_wait: float,
) -> P:
    """Connect from ``source`` and return ``make(ready)``'s protocol once it has set
    ``ready`` (its handshake answered); aborted on failure or after ``max_wait`` s."""
    loop = asyncio.get_running_loop()
    sock = bound_socket(source)
    try:
        async with asyncio.timeout(max_wait):
            await loop.sock_connect(sock, endpoint)
            ready: asyncio.Future[bytes] = loop.create_future()
            proto = make(ready)
            await loop.create_connection(lambda: proto, sock=sock)
            try:
                await ready
            except BaseException:
                transport = getattr(proto, "transport", None)
                if transport is not None:
                    transport.abort()
                raise
            return proto
    except BaseException:
        sock.close()
        raise


async def open_pool(
    n: int,
    endpoints: Sequence[tuple[str, int]],
    path_for: Callable[[str], str],
    sources: Sequence[str],
    concurrency: int = 100,
    max_wait: float = 15.0,
    deadline: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    opener: Callable[..., Awaitable[asyncio.Protocol]] | None = None,
    prefix: str = "u",
) -> Pool:
    """Open ``n`` connections as users u0..u{n-1}, bounded by ``concurrency`` and ``deadline``.

    Connection i goes to ``endpoints[i % len]`` from ``sources[i % len]``; each is retried
    twice. ``deadline`` (perf_counter time) stops starting new connections. ``opener``
    opens another kind of stream (:func:`bench.sseclient.open_one_sse`) as users
    ``{prefix}0..``.
    """
    sink = Sink()
    users = [f"{prefix}{i}" for i in range(n)]
    open_stream = opener or open_one
    clients: list[Any] = [None] * n
    errors: dict[str, int] = {}
    sem = asyncio.Semaphore(concurrency)
    done = 0
    t0 = time.perf_counter()

    async def one(i: int) -> None:
        nonlocal done
        async with sem:
            for attempt in range(3):
                if deadline is not None and time.perf_counter() > deadline:
                    errors["deadline"] = errors.get("deadline", 0) + 1
                    break
                try:
                    clients[i] = await open_stream(
                        i,
                        sink,
                        endpoints[i % len(endpoints)],
                        sources[i % len(sources)],
                        path_for(users[i]),
                        max_wait,
                    )
                    break
                except (OSError, TimeoutError, ConnectionError) as exc:
                    if attempt == 2:
                        key = str(exc)[:80] or type(exc).__name__
                        errors[key] = errors.get(key, 0) + 1
                    await asyncio.sleep(0.2 * (attempt + 1))
            done += 1
            if progress is not None and done % 1000 == 0:
                progress(done, n)

    await asyncio.gather(*(one(i) for i in range(n)))
    return Pool(sink, clients, users, errors, time.perf_counter() - t0)
