"""End to end: real server processes, a real WebSocket client and an SSE client.

Every test talks to ``python -m tidings serve`` over loopback. Most share one server
(memory broker, SQLite, a 1 s heartbeat so timers are testable); shutdown, Redis
outages and multi-process fan-out get servers of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from httpx_sse import aconnect_sse
from realtime_helpers import (
    API_KEY,
    WS_TRANSPORTS,
    RedisServer,
    ServerProcess,
    server_pair,
    shared_redis_url,
    throwaway_postgres,
    token,
    transports,
    wait_until,
)
from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

BACKEND = {"Authorization": f"Bearer {API_KEY}"}
LIMITS = {
    "TIDINGS_HEARTBEAT": "1",
    "TIDINGS_MAX_CONNECTIONS_PER_USER": "3",
    "TIDINGS_INBOUND_RATE": "5",
    "TIDINGS_INBOUND_BURST": "10",
    "TIDINGS_MAX_FRAME_BYTES": "16384",
    "TIDINGS_OUTBOX_SIZE": "100",
    "TIDINGS_OUTBOX_BYTES": "262144",
    "TIDINGS_RESUME_LIMIT": "60",
    "TIDINGS_SHUTDOWN_GRACE": "3",
    "TIDINGS_JWT_LEEWAY": "0",
}


# -- fixtures and clients ------------------------------------------------------------------


@pytest.fixture(scope="module", params=WS_TRANSPORTS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("server")
    process = ServerProcess(workdir, **transports(request.param), **LIMITS).start()
    yield process
    process.stop()


class Client:
    """A WebSocket client that answers server pings and queues every other frame."""

    def __init__(self, ws: ClientConnection, *, answer_pings: bool = True) -> None:
        self.ws = ws
        self.answer_pings = answer_pings
        self.pings = 0
        self.welcome: dict[str, Any] = {}
        self.stash: list[dict[str, Any]] = []
        self.frames: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._pump = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = orjson.loads(raw)
                if frame["type"] == "ping":
                    self.pings += 1
                    if self.answer_pings:
                        await self.ws.send('{"type": "pong"}')
                    continue
                await self.frames.put(frame)
        except ConnectionClosed:
            pass
        finally:
            await self.frames.put(None)

    async def send(self, **frame: Any) -> None:
        await self.ws.send(orjson.dumps(frame).decode())

    async def next(self, kind: str | None = None, within: float = 5) -> dict[str, Any]:
        """The next frame, or the next one of ``kind`` (others stay queued, in order)."""
        for index, frame in enumerate(self.stash):
            if kind is None or frame["type"] == kind:
                return self.stash.pop(index)
        async with asyncio.timeout(within):
            while True:
                frame = await self.frames.get()
                assert frame is not None, f"closed {self.close_code} while waiting for {kind}"
                if kind is None or frame["type"] == kind:
                    return frame
                self.stash.append(frame)

    async def closed(self, within: float = 5) -> int | None:
        """Wait for the server to close; the close code."""
        async with asyncio.timeout(within):
            await self._pump
        return self.close_code

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        await self._pump


async def connect(server: ServerProcess, query: str = "", **options: Any) -> Client:
    headers = options.pop("headers", None)
    answer_pings = options.pop("answer_pings", True)
    ws = await websockets.connect(
        f"{server.ws}?{query}", additional_headers=headers, open_timeout=5, **options
    )
    return Client(ws, answer_pings=answer_pings)


async def join(server: ServerProcess, user: str, after: str | None = None, **claims: Any) -> Client:
    """Connect as ``user`` and consume the welcome frame."""
    query = f"token={token(user, **claims)}" + (f"&after={after}" if after else "")
    client = await connect(server, query)
    client.welcome = await client.next()
    assert client.welcome["type"] == "welcome", client.welcome
    return client


async def notify(
    http: httpx.AsyncClient, to: dict[str, Any], title: str = "hi", **extra: Any
) -> str:
    response = await http.post(
        "/api/v1/notifications",
        headers=BACKEND,
        json={"to": to, "type": "test", "level": "info", "title": title, **extra},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def publish(http: httpx.AsyncClient, topic: str, data: Any) -> None:
    response = await http.post(
        f"/api/v1/topics/{topic}/messages", headers=BACKEND, json={"data": data}
    )
    assert response.status_code == 202, response.text


async def messages(client: Client, count: int, within: float = 5) -> list[dict[str, Any]]:
    """The next ``count`` topic messages, whether one by one or in ``batch`` frames."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        while len(got) < count:
            index = next(
                (i for i, f in enumerate(client.stash) if f["type"] in ("message", "batch")), None
            )
            if index is not None:
                frame = client.stash.pop(index)
            else:
                frame = await client.frames.get()
            assert frame is not None, f"closed {client.close_code}"
            if frame["type"] == "message":
                got.append(frame)
            elif frame["type"] == "batch":
                got += frame["messages"]
            else:
                client.stash.append(frame)
    client.stash[:0] = got[count:]  # the rest of a batch waits for the next call
    return got[:count]


# -- the conversation ----------------------------------------------------------------------


async def test_welcome_comes_first_with_the_unread_count(server, http, user) -> None:
    await notify(http, {"users": [user]})
    me = {"Authorization": f"Bearer {token(user)}"}
    unread = (await http.get("/api/v1/me/unread-count", headers=me)).json()["unread_count"]
    client = await connect(server, f"token={token(user)}")
    welcome = await client.next()
    assert welcome["type"] == "welcome"
    assert welcome["user"] == user
    assert welcome["unread"] == unread >= 1
    assert welcome["heartbeat"] == 1
    assert welcome["connection"]
    await client.close()


async def test_notifications_arrive_live_for_users_roles_and_everyone(server, http, user) -> None:
    client = await join(server, user, roles=["ops"])
    sent = [
        await notify(http, {"users": [user]}, title="direct", body="b", data={"k": 1}, url="/x"),
        await notify(http, {"roles": ["ops"]}, title="role"),
        await notify(http, {"all": True}, title="everyone"),
    ]
    received = [(await client.next("notification"))["notification"] for _ in sent]
    assert [n["id"] for n in received] == sent
    first = received[0]
    assert {k: first[k] for k in ("type", "level", "title", "body", "data", "url", "read_at")} == {
        "type": "test",
        "level": "info",
        "title": "direct",
        "body": "b",
        "data": {"k": 1},
        "url": "/x",
        "read_at": None,
    }
    await client.close()


async def test_a_notification_reaching_a_user_by_two_routes_arrives_once(
    server, http, user
) -> None:
    client = await join(server, user, roles=["ops"])
    both = await notify(http, {"users": [user], "roles": ["ops"]})
    marker = await notify(http, {"users": [user]}, title="marker")
    ids = [(await client.next("notification"))["notification"]["id"] for _ in range(2)]
    assert ids == [both, marker]
    await client.close()


async def test_ping_is_answered_with_pong_carrying_the_ref(server, user) -> None:
    client = await join(server, user)
    await client.send(type="ping", ref="p1")
    assert await client.next("pong") == {"type": "pong", "ref": "p1"}
    await client.close()


async def test_the_server_pings_every_heartbeat(server, user) -> None:
    client = await join(server, user)
    await asyncio.sleep(2.5)
    assert client.pings >= 2
    assert client.close_code is None
    await client.close()


async def test_list_answers_with_a_page_and_the_ref(server, http, user) -> None:
    created = [await notify(http, {"users": [user]}, title=str(n)) for n in range(3)]
    client = await join(server, user)
    await client.send(type="list", limit=2, ref=9)
    page = await client.next("list")
    assert page["ref"] == 9
    assert [item["id"] for item in page["items"]] == created[::-1][:2]
    assert page["unread_count"] == client.welcome["unread"] >= 3
    await client.send(type="list", limit=2, before=page["next_before"], ref=10)
    rest = await client.next("list")
    assert rest["items"][0]["id"] == created[0]
    await client.close()


async def test_read_state_is_kept_in_step_across_tabs(server, http, user) -> None:
    first_id = await notify(http, {"users": [user]})
    second_id = await notify(http, {"users": [user]})
    tab, other_tab = await join(server, user), await join(server, user)
    unread = tab.welcome["unread"]
    await tab.send(type="mark_read", ids=[first_id], ref="r")
    assert await tab.next("ack") == {"type": "ack", "ref": "r", "ids": [first_id]}
    for client in (tab, other_tab):
        assert (await client.next("read"))["ids"] == [first_id]
        assert (await client.next("unread"))["count"] == unread - 1
    await other_tab.send(type="mark_all_read", ref="all")
    assert (await other_tab.next("ack"))["ref"] == "all"
    for client in (tab, other_tab):
        assert (await client.next("read_all"))["type"] == "read_all"
        assert (await client.next("unread"))["count"] == 0
    response = await http.delete(
        f"/api/v1/me/notifications/{second_id}", headers={"Authorization": f"Bearer {token(user)}"}
    )
    assert response.status_code == 200, response.text
    assert (await tab.next("deleted"))["ids"] == [second_id]
    await tab.close()
    await other_tab.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ('{"type": "teleport", "ref": 5}', "unknown_type"),
        ('{"type": "mark_read", "ids": "x", "ref": 5}', "invalid"),
        ('{"type": "list", "limit": 1000, "ref": 5}', "invalid"),
    ],
)
async def test_bad_frames_get_error_frames_and_the_connection_stays(
    server, user, frame: str, code: str
) -> None:
    client = await join(server, user)
    await client.ws.send(frame)
    error = await client.next("error")
    assert error["code"] == code
    assert error["ref"] == (None if code == "bad_json" else 5)
    await client.send(type="ping", ref=1)
    assert (await client.next("pong"))["ref"] == 1
    await client.close()


async def test_too_many_ids_is_an_error_with_the_ref(server, user) -> None:
    client = await join(server, user)
    await client.send(type="mark_read", ids=[f"{n:016x}" for n in range(501)], ref="big")
    error = await client.next("error")
    assert (error["code"], error["ref"]) == ("too_many_ids", "big")
    await client.close()


async def test_topic_subscription_with_a_filter(server, http, user) -> None:
    client = await join(server, user, topics=["logs.*"])
    await client.send(type="subscribe", topic="logs.api", filter={"level": ["error"]}, ref=1)
    assert await client.next("ack") == {"type": "ack", "ref": 1, "topic": "logs.api"}
    await publish(http, "logs.api", {"level": "info", "msg": "skip"})
    await publish(http, "logs.api", {"level": "error", "msg": "keep"})
    message = await client.next("message")
    assert {k: message.pop(k) for k in ("id", "ts")}.keys() == {"id", "ts"}
    assert message == {
        "type": "message",
        "topic": "logs.api",
        "data": {"level": "error", "msg": "keep"},
    }
    await client.send(type="unsubscribe", topic="logs.api", ref=2)
    assert (await client.next("ack"))["ref"] == 2
    await publish(http, "logs.api", {"level": "error", "msg": "after"})
    await client.send(type="ping", ref="end")
    assert (await client.next())["type"] == "pong"  # nothing else came first
    await client.close()


# -- close codes ---------------------------------------------------------------------------


async def test_missing_or_invalid_tokens_close_with_4001(server) -> None:
    for query in (
        "",
        "token=garbage",
        f"token={token('x', secret='wrong-secret-but-long-enough')}",
    ):
        client = await connect(server, query)
        assert await client.closed() == 4001


async def test_the_token_may_come_in_the_authorization_header(server, user) -> None:
    client = await connect(server, headers={"Authorization": f"Bearer {token(user)}"})
    assert (await client.next())["type"] == "welcome"
    await client.close()


async def test_a_token_expiring_while_connected_closes_with_4001(server, user) -> None:
    client = await join(server, user, ttl=1.5)
    assert await client.closed(within=5) == 4001


async def test_a_foreign_origin_closes_with_4003(server, user) -> None:
    client = await connect(server, f"token={token(user)}", origin="https://evil.example")
    assert await client.closed() == 4003


async def test_a_forbidden_topic_is_refused_and_the_stream_goes_on(server, user) -> None:
    client = await join(server, user, topics=["logs.*"])
    await client.send(type="subscribe", topic="billing", ref=1)
    refused = await client.next("error")
    assert (refused["code"], refused["ref"]) == ("topic_forbidden", 1)
    await client.send(type="subscribe", topic="logs.api", ref=2)
    assert (await client.next("ack"))["ref"] == 2


async def test_a_glob_wider_than_the_claim_is_refused(server, user) -> None:
    client = await join(server, user, topics=["logs.*"])
    await client.send(type="subscribe", topic="*", ref=1)
    refused = await client.next("error")
    assert (refused["code"], refused["ref"]) == ("topic_forbidden", 1)
    await client.send(type="subscribe", topic="logs.[x", ref=2)
    assert (await client.next("error"))["code"] == "bad_pattern"
    await client.send(type="subscribe", topic="logs.*", ref=3)
    assert (await client.next("ack"))["ref"] == 3


async def test_too_many_connections_for_one_user_close_with_4009(server, user) -> None:
    clients = [await join(server, user) for _ in range(3)]
    extra = await connect(server, f"token={token(user)}")
    assert await extra.closed() == 4009
    for client in clients:
        await client.close()


async def test_flooding_closes_with_4008(server, user) -> None:
    client = await join(server, user)
    for n in range(40):
        try:
            await client.send(type="ping", ref=n)
        except ConnectionClosed:
            break
    assert await client.closed() == 4008


async def test_a_frame_over_the_limit_closes_with_1009(server, user) -> None:
    client = await join(server, user)
    await client.send(type="ping", ref="x" * 17_000)
    assert await client.closed() == 1009


async def test_a_silent_client_is_closed_after_two_heartbeats(server, user) -> None:
    client = await connect(server, f"token={token(user)}", answer_pings=False)
    started = time.monotonic()
    assert await client.closed(within=6) is not None
    assert 1.5 < time.monotonic() - started < 4


class StalledClient:
    """A WebSocket client over a raw socket that can stop reading entirely.

    The sans-I/O ``websockets`` protocol frames the bytes; nothing buffers on our side,
    so when this client stops reading, the server's buffers and then its outbox fill.
    """

    def __init__(self, url: str, port: int) -> None:
        self.protocol = ClientProtocol(parse_uri(url), max_size=None)
        self.port = port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16_384)
        self.frames = 0
        self.reset = False
        """Whether a send already met the server's reset (the kernel reports it once)."""

    async def open(self) -> None:
        self.sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, ("127.0.0.1", self.port))
        self.protocol.send_request(self.protocol.connect())
        await self._flush()
        while self.protocol.handshake_exc is None and self.protocol.state.name == "CONNECTING":
            self.protocol.receive_data(await loop.sock_recv(self.sock, 4096))
        assert self.protocol.handshake_exc is None

    async def send(self, text: str) -> None:
        self.protocol.send_text(text.encode())
        await self._flush()

    async def _flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                try:
                    await asyncio.get_running_loop().sock_sendall(self.sock, chunk)
                except (ConnectionResetError, BrokenPipeError):
                    self.reset = True
                    raise

    async def read_to_close(self) -> int | None:
        """Read everything the server sent until its close frame; the close code."""
        loop = asyncio.get_running_loop()
        while self.protocol.close_rcvd is None:
            data = await loop.sock_recv(self.sock, 1 << 16)
            if not data:
                if self.reset:  # the reset was reported to a send, not to this read
                    raise ConnectionResetError
                break
            self.protocol.receive_data(data)
            events = self.protocol.events_received()
            self.frames += sum(isinstance(e, Frame) and e.opcode is Opcode.TEXT for e in events)
        self.sock.close()
        return self.protocol.close_rcvd.code if self.protocol.close_rcvd else None


async def test_a_slow_consumer_is_dropped_without_delaying_others(server, http, user) -> None:
    slow = StalledClient(f"{server.ws}?token={token(user, topics=['flood'])}", server.port)
    await slow.open()
    await slow.send('{"type": "subscribe", "topic": "flood"}')
    fast = await join(server, f"{user}-fast", topics=["flood"])
    await fast.send(type="subscribe", topic="flood", ref=1)
    await fast.next("ack")
    await asyncio.sleep(0.2)  # let the slow client's subscription land

    async def stay_alive() -> None:  # it keeps talking, it just never reads
        while True:
            await slow.send('{"type": "pong"}')
            await asyncio.sleep(0.4)

    keepalive = asyncio.create_task(stay_alive())
    blob = "x" * 30_000
    total = 400
    started = time.monotonic()
    for n in range(total):
        await publish(http, "flood", {"n": n, "blob": blob})
    received = await messages(fast, total, within=20)  # one by one or in batches
    assert [m["data"]["n"] for m in received] == list(range(total))
    assert time.monotonic() - started < 30
    keepalive.cancel()
    # The slow client never read; it was cut off with 4010 once its outbox filled, and
    # reset if it did not read its way to that close frame within seconds.
    async with asyncio.timeout(15):
        with contextlib.suppress(ConnectionResetError):
            assert await slow.read_to_close() == 4010
    assert slow.frames < total
    await fast.close()


# -- resume ---------------------------------------------------------------------------------


async def test_resume_replays_what_was_missed_in_order_then_goes_live(server, http, user) -> None:
    client = await join(server, user)
    seen = await notify(http, {"users": [user]})
    assert (await client.next("notification"))["notification"]["id"] == seen
    await client.close()
    missed = [await notify(http, {"users": [user]}, title=str(n)) for n in range(5)]
    client = await join(server, user, after=seen)
    replay = [(await client.next("notification"))["notification"]["id"] for _ in missed]
    assert replay == missed
    live = await notify(http, {"users": [user]})
    assert (await client.next("notification"))["notification"]["id"] == live
    await client.close()


async def test_resume_after_too_many_missed_asks_for_a_refetch(server, http, user) -> None:
    first = await notify(http, {"users": [user]})
    for n in range(61):
        await notify(http, {"users": [user]}, title=str(n))
    client = await join(server, user, after=first)
    assert await client.next() == {"type": "resync", "reason": "too_many_missed"}
    await client.close()


async def test_resume_is_exactly_once_under_concurrent_publishing(server, http, user) -> None:
    created: list[str] = []
    routes = [{"users": [user]}, {"roles": ["ops"]}, {"users": [user], "roles": ["ops"]}]

    async def produce() -> None:
        for n in range(90):
            created.append(await notify(http, routes[n % 3], title=str(n)))
            await asyncio.sleep(0.01)

    producer = asyncio.create_task(produce())
    received: list[str] = []
    while not producer.done() or len(received) < len(created):
        client = await join(server, user, after=received[-1] if received else None, roles=["ops"])
        try:
            async with asyncio.timeout(0.3):  # then drop the connection mid-stream
                while True:
                    received.append((await client.next("notification"))["notification"]["id"])
        except TimeoutError:
            pass
        await client.ws.close()
    await producer
    assert len(received) == len(set(received)), "a notification arrived twice"
    assert received == created


@pytest.mark.parametrize("after", ["nonsense", "ffffffffffffffff"])
async def test_wrong_after_is_refused(server, user, after) -> None:
    """4400: reconnect without `after` (1012 would bring the client back the same way)."""
    client = await connect(server, f"token={token(user)}&after={after}")
    assert await client.closed() == 4400


# -- Server-Sent Events ----------------------------------------------------------------------


async def _sse_events(http: httpx.AsyncClient, url: str, headers: dict[str, str], count: int):
    events = []
    async with aconnect_sse(http, "GET", url, headers=headers) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        assert source.response.headers["cache-control"] == "no-cache"
        assert source.response.headers["x-accel-buffering"] == "no"
        async with asyncio.timeout(10):
            async for event in source.aiter_sse():
                events.append(event)
                if len(events) == count:
                    break
    return events


async def test_sse_streams_welcome_notifications_with_ids_and_pings(server, http, user) -> None:
    async def later() -> str:
        await asyncio.sleep(0.3)
        return await notify(http, {"users": [user]})

    pending = asyncio.create_task(later())
    events = await _sse_events(
        http, "/api/v1/me/stream", {"Authorization": f"Bearer {token(user)}"}, count=3
    )
    sent = await pending
    kinds = [e.event for e in events]
    assert kinds[0] == "welcome"
    assert orjson.loads(events[0].data)["user"] == user
    note = next(e for e in events if e.event == "notification")
    assert note.id == sent
    assert orjson.loads(note.data)["notification"]["id"] == sent
    assert sorted(kinds) == ["notification", "ping", "welcome"]  # heartbeat is 1 s here


async def test_sse_resumes_from_last_event_id_with_a_query_token(server, http, user) -> None:
    seen = await notify(http, {"users": [user]})
    missed = [await notify(http, {"users": [user]}) for _ in range(3)]
    events = await _sse_events(
        http,
        f"/api/v1/me/stream?token={token(user)}",
        {"Last-Event-ID": seen},
        count=4,
    )
    assert [e.event for e in events] == ["welcome", "notification", "notification", "notification"]
    assert [e.id for e in events[1:]] == missed


async def test_sse_refuses_bad_credentials_with_http_errors(server, http) -> None:
    response = await http.get("/api/v1/me/stream")
    assert response.status_code == 401
    assert response.json()["error"]["code"]
    response = await http.get(
        f"/api/v1/me/stream?token={token('x')}", headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403


async def test_sse_topics_are_checked_and_delivered(server, http, user) -> None:
    forbidden = await http.get(f"/api/v1/me/stream?token={token(user)}&topics=secret")
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "topic_forbidden"  # as on the WebSocket
    globbed = await http.get(f"/api/v1/me/stream?token={token(user, topics=['logs.*'])}&topics=*")
    assert globbed.status_code == 403  # a glob wider than the claim

    async def later() -> None:
        await asyncio.sleep(0.3)
        await publish(http, "alerts", {"level": "error"})

    pending = asyncio.create_task(later())
    url = f"/api/v1/me/stream?token={token(user, topics=['alerts'])}&topics=alerts"
    events = await _sse_events(http, url, {}, count=2)
    await pending
    message = orjson.loads(next(e for e in events if e.event == "message").data)
    assert message.pop("id") and message.pop("ts")
    assert message == {"type": "message", "topic": "alerts", "data": {"level": "error"}}


# -- process lifecycle and topology ---------------------------------------------------------


async def test_sigterm_closes_clients_with_1012_and_exits_in_time(
    tmp_path: Path, user: str
) -> None:
    server = ServerProcess(tmp_path, **LIMITS).start()
    try:
        client = await join(server, user)
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
            url = f"/api/v1/me/stream?token={token(user)}"
            async with aconnect_sse(http, "GET", url) as source:
                events = source.aiter_sse()
                assert (await anext(events)).event == "welcome"
                started = time.monotonic()
                server.terminate()
                assert await client.closed(within=10) == 1012
                # The SSE stream is told too, with a last `close` event, and ends.
                async with asyncio.timeout(5):
                    last = [event async for event in events][-1]
                assert last.event == "close"
                assert json.loads(last.data)["code"] == 1012
        await asyncio.to_thread(server.wait, 10)
        grace = float(LIMITS["TIDINGS_SHUTDOWN_GRACE"])
        assert time.monotonic() - started < grace + 2
    finally:
        server.stop()


@pytest.mark.redis
async def test_a_redis_restart_mid_stream_loses_nothing(tmp_path: Path, user: str) -> None:
    redis_server = RedisServer()
    redis_server.start()
    server = ServerProcess(tmp_path, TIDINGS_BROKER_URL=redis_server.url, **LIMITS).start()
    try:
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
            client = await join(server, user)
            before = await notify(http, {"users": [user]})
            assert (await client.next("notification"))["notification"]["id"] == before
            await asyncio.to_thread(redis_server.stop)

            async def not_ready() -> bool:
                return (await http.get("/readyz")).status_code == 503

            await wait_until(not_ready, what="readyz to report the broker down")
            during = [await notify(http, {"users": [user]}, title=str(n)) for n in range(5)]
            await asyncio.to_thread(redis_server.start)
            after = await notify(http, {"users": [user]}, title="after")
            received = [
                (await client.next("notification", within=15))["notification"]["id"]
                for _ in range(6)
            ]
            assert sorted(received) == sorted([*during, after])
            await client.send(type="ping", ref="end")
            assert (await client.next())["type"] in ("pong", "unread")
            await client.close()
    finally:
        server.stop()
        redis_server.stop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with throwaway_postgres("tidings_rt") as url:
        yield url


@pytest.fixture
def two_servers(tmp_path: Path, postgres_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = {**LIMITS, "TIDINGS_DATABASE_URL": postgres_url, "TIDINGS_BROKER_URL": shared_redis_url()}
    with server_pair(tmp_path, **env) as pair:
        yield pair


@pytest.mark.redis
@pytest.mark.postgres
async def test_two_processes_share_notifications_and_read_state(two_servers, user) -> None:
    first, second = two_servers
    tab_one = await join(first, user, roles=["ops"])
    tab_two = await join(second, user, roles=["ops"])
    async with httpx.AsyncClient(base_url=second.http, timeout=10) as http:
        sent = await notify(http, {"roles": ["ops"]})
    for tab in (tab_one, tab_two):
        assert (await tab.next("notification"))["notification"]["id"] == sent
    await tab_one.send(type="mark_read", ids=[sent], ref=1)
    assert (await tab_two.next("read"))["ids"] == [sent]
    assert (await tab_two.next("unread"))["count"] == 0
    await tab_two.close()
    # Resume on the other process from what the first one delivered.
    async with httpx.AsyncClient(base_url=first.http, timeout=10) as http:
        missed = await notify(http, {"users": [user]})
    resumed = await join(second, user, after=sent)
    assert (await resumed.next("notification"))["notification"]["id"] == missed
    await resumed.close()
    await tab_one.close()


@pytest.mark.redis
async def test_several_workers_behind_one_port_deliver_to_everyone(
    tmp_path: Path, user: str
) -> None:
    redis_server = RedisServer()
    redis_server.start()
    server = ServerProcess(
        tmp_path, TIDINGS_BROKER_URL=redis_server.url, TIDINGS_WORKERS="2", **LIMITS
    ).start()
    try:
        # The kernel spreads these over both worker processes; each must get every frame.
        clients = [await join(server, f"{user}-{n}", roles=["ops"]) for n in range(8)]
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
            sent = [await notify(http, {"roles": ["ops"]}) for _ in range(5)]
        for client in clients:
            got = [(await client.next("notification"))["notification"]["id"] for _ in sent]
            assert got == sent
            await client.close()
    finally:
        server.stop()
        redis_server.stop()
