"""End to end: what one user or one misbehaving client may take from the server.

Connection caps (counted once, atomically, for WebSocket and SSE alike, and released
however a stream ends), a write buffer bounded for clients that stop reading or flood
pings, and a read budget per user shared by WebSocket ``list`` and the REST inbox.
Each test runs against real ``tidings serve`` processes over loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from realtime_helpers import API_KEY, WS_TRANSPORTS, ServerProcess, token, transports, wait_until
from test_realtime import StalledClient, connect, join
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.uri import parse_uri

BACKEND = {"Authorization": f"Bearer {API_KEY}"}
CAP = 3
LIMITS = {
    "TIDINGS_HEARTBEAT": "1",
    "TIDINGS_MAX_CONNECTIONS_PER_USER": str(CAP),
    "TIDINGS_INBOUND_RATE": "50",
    "TIDINGS_INBOUND_BURST": "100",
    "TIDINGS_OUTBOX_BYTES": "65536",
    "TIDINGS_READ_RATE": "2",
    "TIDINGS_READ_BURST": "5",
    "TIDINGS_JWT_LEEWAY": "0",
}


@pytest.fixture(scope="module", params=WS_TRANSPORTS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("limits")
    process = ServerProcess(workdir, **transports(request.param), **LIMITS).start()
    yield process
    process.stop()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def server_holds_socket(server_port: int, client_port: int) -> bool:
    """Whether the kernel still has the server's end of this loopback TCP connection."""
    local, remote = f":{server_port:04X}", f":{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(local) and fields[2].endswith(remote):
            return True
    return False


@contextlib.asynccontextmanager
async def talking(client: StalledClient) -> AsyncIterator[None]:
    """Keep a client that never reads talking, so the heartbeat does not end it first."""

    async def pong_forever() -> None:
        with contextlib.suppress(OSError):
            while True:
                await client.send('{"type": "pong"}')
                await asyncio.sleep(0.3)

    task = asyncio.create_task(pong_forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def drop_as_slow(http: httpx.AsyncClient, topic: str) -> None:
    """Publish 30 KB messages to ``topic`` until the server drops a subscriber as slow.

    A dropped connection is counted once its socket is gone (reset, if it does not read
    its way to the close frame within seconds), so the count may trail the drop.
    """

    async def slow_consumer_closes() -> int:
        return (await http.get("/api/v1/stats", headers=BACKEND)).json()["slow_consumer_closes"]

    before = await slow_consumer_closes()
    blob = "x" * 30_000
    for n in range(400):
        response = await http.post(
            f"/api/v1/topics/{topic}/messages", headers=BACKEND, json={"data": {"n": n, "b": blob}}
        )
        assert response.status_code == 202
        if n % 10 == 9 and await slow_consumer_closes() > before:
            return

    async def dropped() -> bool:
        return await slow_consumer_closes() > before

    await wait_until(dropped, within=15, what="a subscriber dropped as a slow consumer")


async def sse_open(http: httpx.AsyncClient, user: str) -> int:
    """Open a stream; its status (200 only once the welcome event arrived), then close it."""
    url = f"/api/v1/me/stream?token={token(user)}"
    async with aconnect_sse(http, "GET", url) as source:
        if source.response.status_code != 200:
            return source.response.status_code
        async with asyncio.timeout(5):
            async for event in source.aiter_sse():
                assert event.event == "welcome"
                return 200
    raise AssertionError("the stream ended before its welcome")


# -- connection caps ---------------------------------------------------------------------------


async def test_streams_the_client_ended_give_their_slot_back(server, http, user) -> None:
    for _ in range(3 * CAP):  # `curl -m1` in a loop: each client hangs up mid-stream
        statuses = [await sse_open(http, user)]
        while statuses[-1] == 429 and len(statuses) < 20:  # the last hang-up is on its way
            await asyncio.sleep(0.05)
            statuses.append(await sse_open(http, user))
        assert statuses[-1] == 200, statuses
    # Every one of them was released: the cap is whole again for both transports.
    clients = [await join(server, user) for _ in range(CAP)]
    extra = await connect(server, f"token={token(user)}")
    assert await extra.closed() == 4009
    for client in clients:
        await client.close()


async def test_concurrent_stream_opens_cannot_exceed_the_cap(server, user) -> None:
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
        opened: list[Any] = []

        async def hold() -> int:
            url = f"/api/v1/me/stream?token={token(user)}"
            async with aconnect_sse(http, "GET", url) as source:
                if source.response.status_code == 200:
                    opened.append(source)
                    await asyncio.sleep(1.0)  # all of them at once
                return source.response.status_code

        statuses = await asyncio.gather(*(hold() for _ in range(30)))
    assert statuses.count(200) == CAP
    assert statuses.count(429) == 30 - CAP


async def test_concurrent_websocket_opens_cannot_exceed_the_cap(server, user) -> None:
    clients = await asyncio.gather(*(connect(server, f"token={token(user)}") for _ in range(20)))
    async with asyncio.timeout(5):
        firsts = [await client.frames.get() for client in clients]
    welcomed = [c for c, first in zip(clients, firsts, strict=True) if first is not None]
    assert len(welcomed) == CAP
    assert {c.close_code for c in clients if c not in welcomed} == {4009}
    for client in welcomed:
        await client.close()


# -- clients that do not read --------------------------------------------------------------------


def _ping_burst(url: str, count: int) -> bytes:
    """``count`` masked client pings with 125-byte payloads, as raw bytes."""
    protocol = ClientProtocol(parse_uri(url), state=State.OPEN)
    for _ in range(count):
        protocol.send_ping(b"p" * 125)
    return b"".join(protocol.data_to_send())


async def test_a_ping_flood_that_never_reads_the_pongs_is_cut_off(server, user) -> None:
    assert server.process is not None
    flooder = StalledClient(f"{server.ws}?token={token(user)}", server.port)
    await flooder.open()
    client_port = flooder.sock.getsockname()[1]
    bystander = await join(server, f"{user}-other")
    before = rss_mib(server.process.pid)
    burst = _ping_burst(server.ws, 2_000)  # 262 KB of pings, answered with 254 KB of pongs
    loop = asyncio.get_running_loop()
    sent = 0
    with contextlib.suppress(OSError, TimeoutError):
        while sent < 48 << 20:
            async with asyncio.timeout(1):  # no progress for a second: the server stopped reading
                await loop.sock_sendall(flooder.sock, burst)
            sent += len(burst)
    grew = rss_mib(server.process.pid) - before
    # The pongs the flooder never read are bounded by TIDINGS_OUTBOX_BYTES, not by its nerve.
    assert sent < 16 << 20, f"the server kept reading: {sent >> 20} MiB of pings taken"
    assert grew < 16, f"server memory grew by {grew:.0f} MiB"
    # Others are served meanwhile, and the flooder's socket is let go within seconds.
    await bystander.send(type="ping", ref="still-there")
    assert (await bystander.next("pong", within=2))["ref"] == "still-there"
    await wait_until(
        lambda: not server_holds_socket(server.port, client_port), within=10, what="abort"
    )
    flooder.sock.close()
    await bystander.close()


async def test_pings_count_against_the_inbound_frame_rate(server, user) -> None:
    client = await join(server, user)  # 50 frames a second, 100 in a burst
    with contextlib.suppress(ConnectionClosed):
        for _ in range(300):
            await client.ws.ping()
    assert await client.closed() == 4008


async def test_a_client_that_stops_reading_is_released_not_left_lingering(
    server, http, user
) -> None:
    stalled = StalledClient(f"{server.ws}?token={token(user, topics=['big'])}", server.port)
    await stalled.open()
    await stalled.send('{"type": "subscribe", "topic": "big", "ref": 1}')
    client_port = stalled.sock.getsockname()[1]
    await asyncio.sleep(0.2)
    async with talking(stalled):
        await drop_as_slow(http, "big")
    started = time.monotonic()
    # Dropped as a slow consumer, and the socket with its buffers really goes away.
    await wait_until(
        lambda: not server_holds_socket(server.port, client_port), within=10, what="abort"
    )
    assert time.monotonic() - started < 8
    # Until then it counted against the cap; now all of the user's slots are free again.
    clients = [await join(server, user) for _ in range(CAP)]
    for client in clients:
        await client.close()
    stalled.sock.close()


async def test_a_lingering_socket_counts_against_the_cap_until_it_is_gone(
    server, http, user
) -> None:
    stalled = StalledClient(f"{server.ws}?token={token(user, topics=['big2'])}", server.port)
    await stalled.open()
    await stalled.send('{"type": "subscribe", "topic": "big2", "ref": 1}')
    others = [await join(server, user) for _ in range(CAP - 1)]
    await asyncio.sleep(0.2)
    async with talking(stalled):
        await drop_as_slow(http, "big2")
    extra = await connect(server, f"token={token(user)}")
    assert await extra.closed() == 4009  # the stalled socket still holds its slot
    client_port = stalled.sock.getsockname()[1]
    await wait_until(
        lambda: not server_holds_socket(server.port, client_port), within=10, what="abort"
    )
    late = await join(server, user)
    for client in [*others, late]:
        await client.close()
    stalled.sock.close()


# -- the read budget ----------------------------------------------------------------------------


async def test_lists_over_the_read_budget_get_rate_limited_errors_not_a_close(server, user) -> None:
    client = await join(server, user)
    for ref in range(8):
        await client.send(type="list", limit=100, ref=ref)
    replies = [await client.next(within=5) for _ in range(8)]
    answered = [r["ref"] for r in replies if r["type"] == "list"]
    limited = [r for r in replies if r["type"] == "error"]
    assert answered == [0, 1, 2, 3, 4]  # the burst
    assert [(r["code"], r["ref"]) for r in limited] == [("rate_limited", n) for n in (5, 6, 7)]
    await asyncio.sleep(0.6)  # 2 reads a second refill
    await client.send(type="list", ref="later")
    assert (await client.next("list"))["ref"] == "later"
    await client.close()


async def test_the_rest_inbox_shares_the_budget_and_says_when_to_retry(server, http, user) -> None:
    client = await join(server, user)
    for ref in range(5):
        await client.send(type="list", ref=ref)
    for _ in range(5):
        assert (await client.next("list"))["type"] == "list"
    headers = {"Authorization": f"Bearer {token(user)}"}
    for path in ("/api/v1/me/notifications", "/api/v1/me/unread-count"):
        response = await http.get(path, headers=headers)
        assert response.status_code == 429, response.text
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response.headers["retry-after"]) >= 1
    # Other users have budgets of their own.
    other = {"Authorization": f"Bearer {token(f'{user}-b')}"}
    assert (await http.get("/api/v1/me/notifications", headers=other)).status_code == 200
    await client.close()
