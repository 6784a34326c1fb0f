"""Event streams served without ASGI (``TIDINGS_SSE_TRANSPORT=direct``), on the wire.

The direct transport answers exactly what the ASGI endpoint answers (status, headers,
CORS, bodies, refusals), then holds the socket with no task: a client that leaves, or
stops reading, gives its slot back; half-sent headers are closed; a stream the server
ends gets its ``close`` event and the last chunk. Raw sockets against real ``tidings
serve`` processes; the realtime suites run the rest against both transports.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
from realtime_helpers import API_KEY, ServerProcess, token, wait_until

from tidings import frames, protocol
from tidings.connection import Connection
from tidings.models import Principal
from tidings.web.session import Session
from tidings.web.sseserver import DirectStream
from tidings.web.timerwheel import TimerWheel

BACKEND = {"Authorization": f"Bearer {API_KEY}"}
ORIGIN = "https://app.example"
SETTINGS = {
    "TIDINGS_HEADERS_TIMEOUT": "1",
    "TIDINGS_HEARTBEAT": "5",
    "TIDINGS_ALLOWED_ORIGINS": ORIGIN,
    "TIDINGS_MAX_CONNECTIONS_PER_USER": "2",
    "TIDINGS_OUTBOX_BYTES": "65536",
    "TIDINGS_JWT_LEEWAY": "0",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("sse"), **SETTINGS).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def asgi_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("sse-asgi")
    process = ServerProcess(workdir, TIDINGS_SSE_TRANSPORT="asgi", **SETTINGS).start()
    yield process
    process.stop()


class RawStream:
    """An event stream read from a raw socket: the head as sent, then chunk by chunk."""

    def __init__(self, port: int, *, receive_buffer: int | None = None) -> None:
        self.port = port
        self.sock = socket.socket()
        if receive_buffer is not None:  # before connecting: it bounds the TCP window
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.setblocking(False)
        self.data = b""

    async def send(self, request: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, ("127.0.0.1", self.port))
        await loop.sock_sendall(self.sock, request.encode())

    async def open(self, target: str, *headers: str, version: str = "1.1") -> str:
        """Send the request; the response head (status line and headers)."""
        lines = [f"GET {target} HTTP/{version}", "Host: 127.0.0.1", *headers, "", ""]
        await self.send("\r\n".join(lines))
        return await self.open_sent()

    async def open_sent(self) -> str:
        """The response head to the request sent."""
        while b"\r\n\r\n" not in self.data:
            assert await self._read(), f"closed before the head: {self.data!r}"
        head, _, self.data = self.data.partition(b"\r\n\r\n")
        return head.decode()

    async def body(self, length: int) -> bytes:
        while len(self.data) < length:
            assert await self._read(), "closed before the body"
        return self.data[:length]

    async def chunk(self, within: float = 5) -> bytes:
        """The next chunk's data (b"" for the last chunk)."""
        async with asyncio.timeout(within):
            while b"\r\n" not in self.data:
                assert await self._read(), f"closed mid-stream: {self.data!r}"
            size_line, _, rest = self.data.partition(b"\r\n")
            size = int(size_line, 16)
            while len(rest) < size + 2:
                assert await self._read(), "closed mid-chunk"
                size_line, _, rest = self.data.partition(b"\r\n")
            self.data = rest[size + 2 :]
            return rest[:size]

    async def events(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        """The next ``count`` events other than pings, as (name, frame)."""
        found: list[tuple[str, dict[str, Any]]] = []
        while len(found) < count:
            chunk = await self.chunk()
            assert chunk, "the stream ended"
            for event in chunk.decode().split("\n\n"):
                name = re.search(r"^event: (.*)$", event, re.M)
                data = re.search(r"^data: (.*)$", event, re.M)
                if name and data and name.group(1) != "ping":
                    found.append((name.group(1), orjson.loads(data.group(1))))
        return found

    async def until_closed(self, within: float = 5) -> bytes:
        """Everything until the server closes the socket (or resets it)."""
        async with asyncio.timeout(within):
            with contextlib.suppress(ConnectionResetError):
                while await self._read():
                    pass
        return self.data

    async def _read(self) -> bytes:
        data = await asyncio.get_running_loop().sock_recv(self.sock, 65536)
        self.data += data
        return data

    def close(self) -> None:
        self.sock.close()


def stream_url(user: str, query: str = "", **claims: Any) -> str:
    return f"/api/v1/me/stream?token={token(user, **claims)}{query}"


async def sse_streams(server: ServerProcess) -> int:
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        stats = (await http.get("/api/v1/stats", headers=BACKEND)).json()
    return int(stats["connections"]["sse"])


def normalized(response: bytes) -> bytes:
    """A response without what differs between two runs: the date, connection ids."""
    response = re.sub(rb"date: [^\r]*", b"date: -", response)
    return re.sub(rb'"connection":"[0-9a-f]+"', b'"connection":"-"', response)


async def first_bytes(
    server: ServerProcess, target: str, *headers: str, version: str = "1.1"
) -> bytes:
    """The head and the first chunk (or the JSON body) a request is answered with."""
    stream = RawStream(server.port)
    try:
        head = await stream.open(target, *headers, version=version)
        length = re.search(r"content-length: (\d+)", head)
        if length:
            first = await stream.body(int(length.group(1)))
        else:
            chunk = await stream.chunk()
            first = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        return normalized(head.encode() + b"\r\n\r\n" + first)
    finally:
        stream.close()


async def test_both_transports_answer_a_stream_with_the_same_bytes(
    server: ServerProcess, asgi_server: ServerProcess, user: str
) -> None:
    hold = [RawStream(s.port) for s in (server, asgi_server) for _ in range(2)]
    try:
        requests: list[tuple[str, tuple[str, ...], str]] = [
            (stream_url(f"{user}-a"), ("Accept: text/event-stream",), "1.1"),
            (stream_url(f"{user}-b"), (f"Origin: {ORIGIN}", "Last-Event-ID: "), "1.1"),
            (stream_url(f"{user}-c"), (), "1.0"),
            ("/api/v1/me/stream", (f"Origin: {ORIGIN}",), "1.1"),
            (stream_url(user), ("Origin: https://evil.example",), "1.1"),
            (stream_url(user, "&after=zz"), (), "1.1"),
            (stream_url(user, "&topics=secret"), (), "1.1"),
            (stream_url(user, "&topics=a&history=x", topics=["a"]), (), "1.1"),
        ]
        for target, headers, version in requests:
            answers = [await first_bytes(s, target, *headers, version=version)
                       for s in (server, asgi_server)]  # fmt: skip
            assert answers[0] == answers[1], target
        # Over the cap (2 here): 429, with CORS headers for an allowed origin.
        for stream in hold:
            await stream.open(stream_url(user))
            await stream.events(1)
        crowded = [await first_bytes(s, stream_url(user), f"Origin: {ORIGIN}")
                   for s in (server, asgi_server)]  # fmt: skip
        assert crowded[0] == crowded[1]
        assert crowded[0].startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    finally:
        for stream in hold:
            stream.close()


async def test_a_stream_has_its_headers_cors_included_and_starts_with_the_welcome(
    server: ServerProcess, user: str
) -> None:
    stream = RawStream(server.port)
    try:
        head = await stream.open(stream_url(user), f"Origin: {ORIGIN}")
        lines = head.split("\r\n")
        assert lines[0] == "HTTP/1.1 200 OK"
        for line in (
            "content-type: text/event-stream; charset=utf-8",
            "cache-control: no-cache",
            "x-accel-buffering: no",
            "transfer-encoding: chunked",
            f"access-control-allow-origin: {ORIGIN}",
            "vary: Origin",
        ):
            assert line in lines
        first = await stream.chunk()
        assert first.startswith(b"retry: 3000\nevent: welcome\ndata: {")
    finally:
        stream.close()


async def test_bytes_sent_behind_a_streams_request_are_not_answered(
    server: ServerProcess, user: str
) -> None:
    for behind in (
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "\x00 not http at all\r\n\r\n",
    ):
        stream = RawStream(server.port)
        try:
            lines = [f"GET {stream_url(user)} HTTP/1.1", "Host: x", "", behind]
            await stream.send("\r\n".join(lines))
            head = await stream.open_sent()
            assert head.startswith("HTTP/1.1 200 OK\r\n")
            assert [name for name, _ in await stream.events(1)] == ["welcome"]
        finally:
            stream.close()


async def test_a_refused_stream_gets_a_json_error_with_its_status(
    server: ServerProcess, user: str
) -> None:
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        missing = await http.get("/api/v1/me/stream")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["code"] == "invalid_token"
        forbidden = await http.get(stream_url(user, "&topics=secret"))
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["code"] == "topic_forbidden"
        # The refused request's connection stays usable: the next one is a stream.
        async with http.stream("GET", stream_url(user)) as ok:
            assert ok.status_code == 200
            assert ok.headers["content-type"] == "text/event-stream; charset=utf-8"


async def test_a_client_that_disconnects_frees_its_slot(server: ServerProcess, user: str) -> None:
    streams = [RawStream(server.port) for _ in range(2)]
    for stream in streams:
        await stream.open(stream_url(user))
        assert (await stream.events(1))[0][0] == "welcome"
    for stream in streams:
        stream.close()
    await wait_until(_none_open(server), within=3, what="streams released")
    again = RawStream(server.port)
    try:
        assert (await again.open(stream_url(user))).startswith("HTTP/1.1 200")
    finally:
        again.close()


def _none_open(server: ServerProcess) -> Any:
    async def check() -> bool:
        return await sse_streams(server) == 0

    return check


async def test_a_slow_reader_is_dropped_and_frees_its_slot(
    server: ServerProcess, user: str
) -> None:
    slow = RawStream(server.port, receive_buffer=4096)
    await slow.open(stream_url(user, "&topics=flood", topics=["flood"]))
    assert (await slow.events(1))[0][0] == "welcome"
    blob = "x" * 30_000
    sent = 0
    async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
        while await sse_streams(server) and sent < 400:  # past the kernel's buffers
            for _ in range(10):
                response = await http.post(
                    "/api/v1/topics/flood/messages",
                    headers=BACKEND,
                    json={"data": {"n": sent, "b": blob}},
                )
                assert response.status_code == 202
                sent += 1
    started = time.monotonic()
    await wait_until(_none_open(server), within=6, what="the slow stream dropped")
    assert time.monotonic() - started < 5  # reset once its close did not drain (STALL)
    assert sent < 400
    rest = await slow.until_closed()  # what the kernel had taken, up to a reset
    if rest.endswith(b"\r\n0\r\n\r\n"):  # it drained in time: why it ended came last
        assert b'event: close\ndata: {"type":"close","code":4010' in rest[-200:]
    slow.close()


async def test_half_sent_request_headers_are_closed_after_the_timeout(
    server: ServerProcess, user: str
) -> None:
    stream = RawStream(server.port)
    started = time.monotonic()
    await stream.send(f"GET {stream_url(user)} HTTP/1.1\r\nHost: x\r\n")
    assert await stream.until_closed() == b""
    assert time.monotonic() - started < 3
    stream.close()


async def test_a_stream_the_server_ends_gets_its_close_event_and_last_chunk(
    server: ServerProcess, user: str
) -> None:
    stream = RawStream(server.port)
    try:
        await stream.open(stream_url(user, ttl=2))
        assert (await stream.events(1))[0][0] == "welcome"
        name, frame = (await stream.events(1))[0]
        assert (name, frame["code"], frame["reason"]) == ("close", 4001, "token expired")
        assert await stream.chunk() == b""
        assert await stream.until_closed() == b""
    finally:
        stream.close()
    await wait_until(_none_open(server), within=3, what="the stream released")


def test_a_stream_is_looked_at_once_per_heartbeat_however_long_it_lasts() -> None:
    """A client of a one-way stream is never heard from: that must not make it due at
    every tick of the wheel once two heartbeats have passed (it is never closed as
    silent, so the ping is all that falls due)."""
    now = [0.0]
    heartbeat = protocol.Heartbeat(interval=30, clock=lambda: now[0])
    written: list[bytes] = []
    conn = Connection(Principal(user="u"), outbox_size=10, transport="sse")
    conn.write_directly(lambda frame, _position: written.append(frame) or True)
    session = Session(SimpleNamespace(settings=SimpleNamespace(jwt_leeway=0)), conn)  # type: ignore[arg-type]
    for minute in range(1, 6):
        now[0] = 60.0 * minute
        assert session.tick(heartbeat, silence_kills=False) == 30
    assert written == [frames.PING] * 5
    assert not conn.closed


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""
        self.closing = False
        self.protocol: Any = None

    def write(self, data: bytes) -> None:
        assert not self.closing
        self.written += data

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0


async def test_uvicorns_graceful_shutdown_ends_a_stream_with_1012() -> None:
    """uvicorn calls ``shutdown()`` on every protocol in ``server_state.connections``."""
    loop = asyncio.get_running_loop()
    settings = SimpleNamespace(outbox_bytes=65536, heartbeat=30, jwt_leeway=0)
    shared: Any = SimpleNamespace(settings=settings, loop=loop, wheel=TimerWheel(loop))
    server_state = SimpleNamespace(connections=set())
    transport = FakeTransport()
    conn = Connection(Principal(user="u"), outbox_size=10, transport="sse")
    session = Session(SimpleNamespace(settings=settings), conn)  # type: ignore[arg-type]
    head = b"HTTP/1.1 200 OK\r\n\r\n"
    stream = DirectStream(shared, server_state, transport, session, head)  # type: ignore[arg-type]
    assert server_state.connections == {stream}
    for stopping in list(server_state.connections):
        stopping.shutdown()
    event = b'event: close\ndata: {"type":"close","code":1012,"reason":"restarting"}\n\n'
    assert transport.written == head + b"%x\r\n" % len(event) + event + b"\r\n0\r\n\r\n"
    assert transport.closing
    assert (conn.close_code, conn.close_reason) == (1012, "restarting")
