"""Bytes on the wire against both WebSocket transports: how frames arrive must not matter.

Fragmented messages, a frame split byte by byte across TCP reads, a client that keeps
talking after its close, an upgrade that never finishes, and an upgrade to another
path (which the ASGI application answers). Raw sockets and the ``websockets`` library's
sans-I/O client build the bytes; a real ``tidings serve`` answers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from realtime_helpers import API_KEY, WS_TRANSPORTS, ServerProcess, token, wait_until
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from tidings.web.timerwheel import TimerWheel

BACKEND = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module", params=WS_TRANSPORTS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path_factory.mktemp("wire"),
        TIDINGS_WS_TRANSPORT=request.param,
        TIDINGS_HEADERS_TIMEOUT="1",
        TIDINGS_HEARTBEAT="5",
    ).start()
    yield process
    process.stop()


class RawClient:
    """A client socket driven byte by byte: the sans-I/O client builds, we send."""

    def __init__(self, server: ServerProcess, user: str) -> None:
        self.protocol = ClientProtocol(parse_uri(f"{server.ws}?token={token(user)}"))
        self.port = server.port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending: list[dict[str, Any]] = []
        self.late: list[bytes] = []
        """Text frames read by :meth:`until_closed`."""

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self.sock.setblocking(False)
        await loop.sock_connect(self.sock, ("127.0.0.1", self.port))
        self.protocol.send_request(self.protocol.connect())
        await self.write(b"".join(self.protocol.data_to_send()))
        while self.protocol.state.name == "CONNECTING":
            self.protocol.receive_data(await loop.sock_recv(self.sock, 4096))
        assert self.protocol.handshake_exc is None
        assert (await self.next())["type"] == "welcome"

    async def write(self, data: bytes, *, byte_by_byte: bool = False) -> None:
        loop = asyncio.get_running_loop()
        if not byte_by_byte:
            await loop.sock_sendall(self.sock, data)
            return
        for index in range(len(data)):
            await loop.sock_sendall(self.sock, data[index : index + 1])
            await asyncio.sleep(0.002)  # a separate TCP segment (NODELAY), a separate read

    def frames(self, *frames: Frame) -> bytes:
        for frame in frames:
            self.protocol.send_frame(frame)
        return b"".join(self.protocol.data_to_send())

    async def next(self, within: float = 5) -> dict[str, Any]:
        """The next text frame other than a ping."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(within):
            while True:
                self.pending += [
                    orjson.loads(event.data)
                    for event in self.protocol.events_received()
                    if isinstance(event, Frame) and event.opcode is Opcode.TEXT
                ]
                self.pending = [frame for frame in self.pending if frame["type"] != "ping"]
                if self.pending:
                    return self.pending.pop(0)
                data = await loop.sock_recv(self.sock, 65536)
                assert data, "the server closed the connection"
                self.protocol.receive_data(data)

    async def until_closed(self, within: float = 5) -> int | None:
        """Read until the server ends the stream; the close code it sent."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(within):
            while True:
                try:
                    data = await loop.sock_recv(self.sock, 65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                self.protocol.receive_data(data)
                self.late += [
                    bytes(e.data)
                    for e in self.protocol.events_received()
                    if isinstance(e, Frame) and e.opcode is Opcode.TEXT
                ]
        close = self.protocol.close_rcvd
        return close.code if close is not None else None


def server_keeps_socket(server_port: int, client_port: int) -> bool:
    """Whether the server process still has its end of this loopback connection open
    (established, or the client's FIN received and not yet closed); what the kernel
    keeps after the process closed it (FIN_WAIT, TIME_WAIT) is not the process's."""
    local, remote = f":{server_port:04X}", f":{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(local) and fields[2].endswith(remote):
            return fields[3] in ("01", "08")  # ESTABLISHED, CLOSE_WAIT
    return False


def ping(ref: str) -> bytes:
    return orjson.dumps({"type": "ping", "ref": ref})


async def test_a_fragmented_message_is_answered_as_one(server, user) -> None:
    client = RawClient(server, user)
    await client.open()
    payload = ping("in-three")
    wire = client.frames(
        Frame(Opcode.TEXT, payload[:5], fin=False),
        Frame(Opcode.PING, b"between"),  # control frames may come between fragments
        Frame(Opcode.CONT, payload[5:12], fin=False),
        Frame(Opcode.CONT, payload[12:], fin=True),
    )
    await client.write(wire)
    assert await client.next() == {"type": "pong", "ref": "in-three"}
    client.sock.close()


async def test_frames_split_byte_by_byte_across_reads_are_answered(server, user) -> None:
    client = RawClient(server, user)
    await client.open()
    wire = client.frames(Frame(Opcode.TEXT, ping("one")), Frame(Opcode.TEXT, ping("two")))
    await client.write(wire, byte_by_byte=True)
    assert await client.next() == {"type": "pong", "ref": "one"}
    assert await client.next() == {"type": "pong", "ref": "two"}
    client.sock.close()


async def test_a_fragmented_message_over_the_limit_closes_with_1009(server, user) -> None:
    client = RawClient(server, user)
    await client.open()
    chunk = b" " * 40_000  # 65,536 bytes is the default limit: the third fragment passes it
    wire = client.frames(
        Frame(Opcode.TEXT, chunk, fin=False),
        Frame(Opcode.CONT, chunk, fin=False),
        Frame(Opcode.CONT, ping("late"), fin=True),
    )
    await client.write(wire)
    assert await client.until_closed() == 1009


async def test_a_text_message_that_is_not_utf8_closes_with_1007(server, user) -> None:
    """RFC 6455 section 8.1: invalid UTF-8 in a text message fails the connection, 1007."""
    client = RawClient(server, user)
    await client.open()
    await client.write(client.frames(Frame(Opcode.TEXT, b'{"type": "ping", "ref": "\xff"}')))
    assert await client.until_closed() == 1007


async def test_a_client_that_closes_and_keeps_sending_is_let_go(server, http, user) -> None:
    client = RawClient(server, user)
    await client.open()
    client_port = client.sock.getsockname()[1]
    client.protocol.send_close(1000, "bye")
    wire = b"".join(client.protocol.data_to_send())
    # What it sends after its close is garbage as far as the server is concerned.
    more = ClientProtocol(parse_uri(server.ws), state=State.OPEN)
    for ref in range(50):
        more.send_text(ping(str(ref)))
    await client.write(wire + b"".join(more.data_to_send()))
    # The echo of its own close (unless the reset for the unread garbage overtook it).
    assert await client.until_closed() in (1000, None)
    assert not [frame for frame in client.late if b"pong" in frame]
    await wait_until(lambda: not server_keeps_socket(server.port, client_port), within=5)
    await wait_until(lambda: _connections(http, user), within=5, what="slot released")
    client.sock.close()


async def _connections(http: httpx.AsyncClient, user: str) -> bool:
    stats = (await http.get("/api/v1/stats", headers=BACKEND)).json()
    return stats["connections"]["websocket"] == 0


async def test_an_upgrade_that_never_finishes_is_closed_and_forgotten(server, user) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", server.port))
    client_port = sock.getsockname()[1]
    partial = f"GET /ws?token={token(user)} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    await loop.sock_sendall(sock, partial.encode())
    started = time.monotonic()
    async with asyncio.timeout(5):
        with contextlib.suppress(ConnectionResetError):
            assert await loop.sock_recv(sock, 1024) == b""
    assert time.monotonic() - started < 3, f"closed after {time.monotonic() - started:.1f}s"
    await wait_until(lambda: not server_keeps_socket(server.port, client_port), within=5)
    sock.close()


async def test_a_connection_that_says_nothing_is_closed(server) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", server.port))
    async with asyncio.timeout(5):
        with contextlib.suppress(ConnectionResetError):
            assert await loop.sock_recv(sock, 1024) == b""
    sock.close()


async def test_an_upgrade_to_another_path_is_the_asgi_apps_to_answer(server, user) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(f"ws://127.0.0.1:{server.port}/elsewhere?token={token(user)}")
    assert refused.value.response.status_code == 403


async def test_the_ws_path_still_works_after_another_path_was_refused(server, user) -> None:
    async with websockets.connect(f"{server.ws}?token={token(user)}") as ws:
        assert orjson.loads(await ws.recv())["type"] == "welcome"


# -- the timer wheel ----------------------------------------------------------------------------


class Alarm:
    def __init__(self, wheel: TimerWheel, log: list[tuple[str, float]], name: str) -> None:
        self.wheel_slot: int | None = None
        self.wheel = wheel
        self.log = log
        self.name = name
        self.again: float | None = None

    def on_timer(self) -> None:
        self.log.append((self.name, time.monotonic()))
        if self.again is not None:
            self.wheel.schedule(self, self.again)
            self.again = None


async def test_the_wheel_fires_each_client_once_per_deadline_in_order() -> None:
    wheel = TimerWheel(asyncio.get_running_loop(), resolution=0.01)
    fired: list[tuple[str, float]] = []
    late, early, gone = (Alarm(wheel, fired, n) for n in ("late", "early", "gone"))
    started = time.monotonic()
    wheel.schedule(late, 0.15)
    wheel.schedule(early, 0.05)
    wheel.schedule(gone, 0.1)
    wheel.cancel(gone)
    early.again = 0.05  # files itself again from its own callback
    await asyncio.sleep(0.3)
    assert [name for name, _ in fired] == ["early", "early", "late"]
    assert all(at - started >= 0.05 for _, at in fired)
    assert len(wheel) == 0


async def test_rescheduling_replaces_the_old_deadline() -> None:
    wheel = TimerWheel(asyncio.get_running_loop(), resolution=0.01)
    fired: list[tuple[str, float]] = []
    alarm = Alarm(wheel, fired, "moved")
    wheel.schedule(alarm, 0.05)
    wheel.schedule(alarm, 0.2)
    await asyncio.sleep(0.1)
    assert fired == []
    await asyncio.sleep(0.2)
    assert [name for name, _ in fired] == ["moved"]


async def test_a_later_deadline_filed_while_firing_does_not_delay_an_earlier_one() -> None:
    wheel = TimerWheel(asyncio.get_running_loop(), resolution=0.01)
    fired: list[tuple[str, float]] = []
    first, waiting = Alarm(wheel, fired, "first"), Alarm(wheel, fired, "waiting")
    started = time.monotonic()
    wheel.schedule(first, 0.02)
    wheel.schedule(waiting, 0.1)
    first.again = 1.0  # filed again, far later, while the wheel fires
    await asyncio.sleep(0.3)
    assert [name for name, _ in fired] == ["first", "waiting"]
    assert fired[1][1] - started < 0.3
