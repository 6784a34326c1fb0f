"""End to end: topics as rooms on a real server (memory broker, then Redis processes).

History and replay, globs, client publishing with its limits, presence; then presence
across two processes sharing Redis, and a killed process's presence expiring.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import aconnect_sse
from realtime_helpers import ServerProcess, shared_redis_url, token, wait_until
from test_realtime import BACKEND, Client, join, messages, publish

ROOMS = {
    "TIDINGS_HEARTBEAT": "5",
    "TIDINGS_INBOUND_RATE": "200",
    "TIDINGS_INBOUND_BURST": "200",
    "TIDINGS_TOPIC_HISTORY": "500",
    "TIDINGS_PUBLISH_RATE": "2",
    "TIDINGS_PUBLISH_BURST": "3",
    "TIDINGS_PUBLISH_MAX_BYTES": "256",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("rooms"), **ROOMS).start()
    yield process
    process.stop()


# -- history and replay --------------------------------------------------------------------


async def test_history_is_replayed_in_order_before_live_messages(server, http, user) -> None:
    topic = f"room.{user}"
    for n in range(5):
        await publish(http, topic, {"n": n})
    await asyncio.sleep(0.2)
    client = await join(server, user, topics=["room.*"])
    await client.send(type="subscribe", topic=topic, history=3, ref=1)
    replayed = await messages(client, 3)
    assert [m["data"]["n"] for m in replayed] == [2, 3, 4]
    ack = await client.next("ack")
    assert (ack["ref"], ack["replayed"], ack["truncated"]) == (1, 3, False)
    await publish(http, topic, {"n": 5})
    (live,) = await messages(client, 1)
    assert live["data"] == {"n": 5} and live["id"] > replayed[-1]["id"]
    # Resuming after an id replays exactly what came after it.
    await client.send(type="unsubscribe", topic=topic, ref=2)
    await client.next("ack")
    await client.send(type="subscribe", topic=topic, since=replayed[0]["id"], ref=3)
    assert [m["data"]["n"] for m in await messages(client, 3)] == [3, 4, 5]
    await client.close()


async def test_batch_frames_only_for_clients_that_ask_for_them(server, http, user) -> None:
    topic = f"room.{user}"
    for n in range(4):
        await publish(http, topic, {"n": n})
    await asyncio.sleep(0.2)
    plain = await join(server, user, topics=["room.*"])
    await plain.send(type="subscribe", topic=topic, history=4, ref=1)
    # A client of contract v1 gets each replayed message as its own `message` frame ...
    replayed = [await plain.next("message") for _ in range(4)]
    assert [m["data"]["n"] for m in replayed] == [0, 1, 2, 3]
    await plain.next("ack")
    assert not [f for f in plain.stash if f["type"] == "batch"]
    # ... one that asked for batches (tidings.js does) gets them in one write.
    batched = await join(server, user, topics=["room.*"])
    await batched.send(type="subscribe", topic=topic, history=4, batch=True, ref=2)
    frame = await batched.next("batch")
    assert [m["data"]["n"] for m in frame["messages"]] == [0, 1, 2, 3]
    assert frame["skipped"] == 0
    await batched.send(type="subscribe", topic=topic, batch="yes", ref=3)
    assert (await batched.next("error"))["code"] == "invalid"
    await plain.close()
    await batched.close()


async def test_replay_under_concurrent_publishing_has_no_gap_and_no_duplicate(
    server, http, user
) -> None:
    topic = f"busy.{user}"
    watcher = await join(server, user, topics=["busy.*"])
    await watcher.send(type="subscribe", topic=topic, ref=0)
    await watcher.next("ack")
    total = 300

    async def publisher() -> None:
        for n in range(total):
            await publish(http, topic, {"n": n})

    running = asyncio.create_task(publisher())
    everything = [m["id"] for m in await messages(watcher, 20)]
    late = await join(server, user, topics=["busy.*"])
    await late.send(type="subscribe", topic=topic, since=everything[9], ref=1)
    await running
    everything += [m["id"] for m in await messages(watcher, total - 20)]
    seen = [m["id"] for m in await messages(late, total - 10, within=10)]
    assert seen == everything[10:]  # replay then live: every id once, in order
    await watcher.close()
    await late.close()


async def test_bad_since_ids_are_clear_errors(server, http, user) -> None:
    await publish(http, f"a.{user}", {"n": 1})
    await publish(http, f"b.{user}", {"n": 1})
    await publish(http, f"a.{user}", {"n": 2})
    client = await join(server, user, topics=["*"])
    await client.send(type="subscribe", topics=[f"a.{user}", f"b.{user}"], history=5, ref=1)
    a1, b1, a2 = await messages(client, 3)
    assert [(m["topic"], m["data"]["n"]) for m in (a1, b1, a2)] == [
        (f"a.{user}", 1),
        (f"b.{user}", 1),
        (f"a.{user}", 2),
    ]
    await client.next("ack")
    await client.send(type="subscribe", topic=f"a.{user}", since=b1["id"], ref=2)
    other = await client.next("error")
    assert (other["code"], other["ref"]) == ("unknown_since", 2)
    await client.send(type="subscribe", topic=f"a.{user}", since="99999999999999-0", ref=3)
    future = await client.next("error")
    assert (future["code"], future["ref"]) == ("invalid_since", 3)
    await client.send(type="subscribe", topic=f"a.{user}", since="nonsense", ref=4)
    assert (await client.next("error"))["code"] == "invalid_since"
    await client.close()


# -- globs ---------------------------------------------------------------------------------


async def test_a_glob_receives_every_matching_topic_with_its_name(server, http, user) -> None:
    client = await join(server, user, topics=[f"logs.{user}.*"])
    await client.send(type="subscribe", topic=f"logs.{user}.*", filter={"level": "error"}, ref=1)
    await client.next("ack")
    await publish(http, f"logs.{user}.api", {"level": "error", "msg": "a"})
    await publish(http, f"logs.{user}.db", {"level": "info", "msg": "filtered out"})
    await publish(http, f"logs.{user}.db", {"level": "error", "msg": "b"})
    await publish(http, f"other.{user}", {"level": "error", "msg": "not matching"})
    got = await messages(client, 2)
    assert [(m["topic"], m["data"]["msg"]) for m in got] == [
        (f"logs.{user}.api", "a"),
        (f"logs.{user}.db", "b"),
    ]
    # Subscribed by name too: still once each.
    await client.send(type="subscribe", topic=f"logs.{user}.api", ref=2)
    await client.next("ack")
    await publish(http, f"logs.{user}.api", {"level": "error", "msg": "c"})
    await client.send(type="ping", ref="end")
    assert [m["data"]["msg"] for m in await messages(client, 1)] == ["c"]
    await client.next("pong")
    assert not [f for f in client.stash if f["type"] in ("message", "batch")]
    await client.close()


async def test_sse_gets_history_and_globs(server, http, user) -> None:
    for n in range(3):
        await publish(http, f"sse.{user}.x", {"n": n})
    await asyncio.sleep(0.2)
    url = f"/api/v1/me/stream?token={token(user, topics=['sse.*'])}&topics=sse.{user}.*&history=2"
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(10), aconnect_sse(http, "GET", url) as source:
        async for event in source.aiter_sse():
            if event.event in ("message", "batch"):
                frame = orjson.loads(event.data)
                got += frame["messages"] if event.event == "batch" else [frame]
                if len(got) >= 2:
                    break
    assert [(m["topic"], m["data"]["n"]) for m in got] == [
        (f"sse.{user}.x", 1),
        (f"sse.{user}.x", 2),
    ]


# -- client publishing ---------------------------------------------------------------------


async def test_clients_publish_under_their_publish_claim(server, http, user) -> None:
    room = f"chat.{user}"
    alice = await join(server, user, topics=["chat.*"], publish=["chat.*"])
    bob = await join(server, f"{user}-bob", topics=["chat.*"])
    await bob.send(type="subscribe", topic=room, ref=1)
    await bob.next("ack")
    await alice.send(type="publish", topic=room, data={"text": "hi"}, ref=7)
    assert await alice.next("ack") == {"type": "ack", "ref": 7, "topic": room}
    heard = await bob.next("message")
    assert (heard["user"], heard["data"], heard["topic"]) == (user, {"text": "hi"}, room)
    await bob.send(type="publish", topic=room, data={"text": "me too"}, ref=8)
    refused = await bob.next("error")
    assert (refused["code"], refused["ref"]) == ("forbidden", 8)
    await alice.send(type="publish", topic=room, data={"text": "x" * 300}, ref=9)
    assert (await alice.next("error"))["code"] == "too_large"
    await alice.close()
    await bob.close()


async def test_publishing_too_fast_is_refused_then_closes_with_4008(server, user) -> None:
    alice = await join(server, user, publish=["flood.*"])
    codes = []
    for n in range(8):
        await alice.send(type="publish", topic=f"flood.{user}", data=n, ref=n)
        frame = await alice.next()
        codes.append(frame.get("code", frame["type"]))
    assert codes[:3] == ["ack", "ack", "ack"]
    assert codes[3:] == ["rate_limited"] * 5
    for n in range(8, 20):
        await alice.send(type="publish", topic=f"flood.{user}", data=n, ref=n)
    assert await alice.closed() == 4008


async def test_sse_clients_publish_over_rest(server, http, user) -> None:
    me = {"Authorization": f"Bearer {token(user, publish=['board.*'])}"}
    watcher = await join(server, user, topics=["board.*"])
    await watcher.send(type="subscribe", topic=f"board.{user}", ref=1)
    await watcher.next("ack")
    sent = await http.post(f"/api/v1/me/topics/board.{user}/messages", headers=me, json={"data": 1})
    assert sent.status_code == 202, sent.text
    assert (await watcher.next("message"))["user"] == user
    refused = await http.post("/api/v1/me/topics/elsewhere/messages", headers=me, json={"data": 1})
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    big = await http.post(
        f"/api/v1/me/topics/board.{user}/messages", headers=me, json={"data": "x" * 300}
    )
    assert (big.status_code, big.json()["error"]["code"]) == (413, "too_large")
    await watcher.close()


# -- presence ------------------------------------------------------------------------------


async def room_users(http: httpx.AsyncClient, topic: str) -> list[str]:
    response = await http.get(f"/api/v1/topics/{topic}/presence", headers=BACKEND)
    assert response.status_code == 200, response.text
    return list(response.json()["users"])


async def online(http: httpx.AsyncClient, user: str) -> dict[str, Any]:
    response = await http.get(f"/api/v1/users/{user}/presence", headers=BACKEND)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def enter(client: Client, topic: str) -> list[str]:
    await client.send(type="subscribe", topic=topic, presence=True, ref="p")
    snapshot = await client.next("presence")
    assert snapshot["topic"] == topic
    await client.next("ack")
    return list(snapshot["users"])


async def test_presence_frames_and_endpoints_dedupe_tabs(server, http, user) -> None:
    room = f"project.{user}"
    ann, bob = f"{user}-ann", f"{user}-bob"
    first = await join(server, ann, topics=["project.*"])
    assert await enter(first, room) == [ann]
    second_tab = await join(server, ann, topics=["project.*"])
    assert await enter(second_tab, room) == [ann]
    bobs = await join(server, bob, topics=["project.*"])
    assert await enter(bobs, room) == sorted([ann, bob])
    assert (await first.next("join")) == {"type": "join", "topic": room, "user": bob}
    assert await room_users(http, room) == sorted([ann, bob])
    assert await online(http, ann) == {"online": True, "connections": 2}
    await first.close()  # ann still has a tab: no leave
    await bobs.send(type="ping", ref=1)
    await bobs.next("pong")
    await second_tab.close()
    assert (await bobs.next("leave")) == {"type": "leave", "topic": room, "user": ann}
    assert [f for f in bobs.stash if f["type"] in ("join", "leave")] == []
    await wait_until(lambda: _is(online(http, ann), {"online": False, "connections": 0}))
    assert await room_users(http, room) == [bob]
    await bobs.close()


async def _is(value: Any, expected: Any) -> bool:
    return await value == expected


# -- several processes on Redis ------------------------------------------------------------


@pytest.fixture
def redis_pair(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    url = shared_redis_url()
    prefix = f"tidings-rooms-{tmp_path.name[-12:]}:"
    env = {**ROOMS, "TIDINGS_BROKER_URL": url, "TIDINGS_BROKER_PREFIX": prefix,
           "TIDINGS_PRESENCE_TTL": "4", "TIDINGS_DATABASE_URL":
           f"sqlite+aiosqlite:///{tmp_path}/shared.db"}  # fmt: skip
    one = ServerProcess(tmp_path / "one" if _mk(tmp_path / "one") else tmp_path, **env).start()
    two = ServerProcess(tmp_path / "two" if _mk(tmp_path / "two") else tmp_path, **env).start()
    yield one, two
    for process in (one, two):
        process.stop()


def _mk(path: Path) -> bool:
    path.mkdir(exist_ok=True)
    return True


async def test_two_processes_share_history_and_presence_and_a_killed_one_leaves(
    redis_pair, user
) -> None:
    one, two = redis_pair
    room = f"room.{user}"
    async with httpx.AsyncClient(base_url=one.http) as http_one:
        for n in range(3):
            await publish(http_one, room, {"n": n})
    await asyncio.sleep(0.2)
    ann = await join(one, f"{user}-ann", topics=["room.*"])
    assert await enter(ann, room) == [f"{user}-ann"]
    bob = await join(two, f"{user}-bob", topics=["room.*"])
    await bob.send(type="subscribe", topic=room, history=10, presence=True, ref=1)
    assert [m["data"]["n"] for m in await messages(bob, 3)] == [0, 1, 2]  # history from one
    assert (await bob.next("presence"))["users"] == sorted([f"{user}-ann", f"{user}-bob"])
    assert (await ann.next("join"))["user"] == f"{user}-bob"
    async with httpx.AsyncClient(base_url=one.http) as http_one:
        assert await online(http_one, f"{user}-bob") == {"online": True, "connections": 1}
        assert await room_users(http_one, room) == sorted([f"{user}-ann", f"{user}-bob"])
        # Process two dies without a word: its users leave once its presence expires.
        assert two.process is not None
        two.process.send_signal(signal.SIGKILL)
        two.process.wait(5)
        assert (await ann.next("leave", within=15))["user"] == f"{user}-bob"
        assert await online(http_one, f"{user}-bob") == {"online": False, "connections": 0}
        assert await room_users(http_one, room) == [f"{user}-ann"]
    await ann.close()
