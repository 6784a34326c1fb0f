"""Operations: cluster-wide stats and connections, the test notification, metrics.

In-process tests check the contract's shapes and credentials on SQLite and PostgreSQL;
real server processes (two on PostgreSQL + Redis, one with two workers) check that the
figures cover every process, that a killed process drops out, and that metrics sum.
"""

from __future__ import annotations

import asyncio
import re
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import websockets
from httpx_sse import aconnect_sse
from realtime_helpers import (
    API_KEY,
    ServerProcess,
    server_pair,
    shared_redis_url,
    throwaway_postgres,
    token,
    wait_until,
)
from support import backend_headers, user_headers

BACKEND = {"Authorization": f"Bearer {API_KEY}"}


# -- in process --------------------------------------------------------------------------------


async def test_stats_have_the_contract_fields(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/stats", headers=backend_headers())
    assert response.status_code == 200
    stats = response.json()
    assert stats["connections"] == {"websocket": 0, "sse": 0, "total": 0}
    assert stats["users_online"] == 0
    assert set(stats["notifications"]) == {"total", "last_minute", "last_hour", "by_type"}
    assert stats["deliveries"] == 0
    assert stats["slow_consumer_closes"] == 0
    assert stats["processes"] == 1


@pytest.mark.parametrize("path", ["/api/v1/stats", "/api/v1/connections"])
async def test_operations_need_an_api_key_not_a_user_token(app, client, path) -> None:
    assert (await client.get(path)).status_code == 401
    assert (await client.get(path, headers=backend_headers("wrong"))).status_code == 401
    assert (await client.get(path, headers=user_headers(app, "alice"))).status_code == 401
    refused = await client.post("/api/v1/test", json={"user": "a"}, headers=user_headers(app, "a"))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"


async def test_stats_count_stored_notifications_by_type(client: httpx.AsyncClient) -> None:
    for kind in ("invoice.paid", "invoice.paid", "task.assigned"):
        body = {"to": {"users": ["bob"]}, "title": "t", "type": kind}
        assert (
            await client.post("/api/v1/notifications", json=body, headers=backend_headers())
        ).status_code == 201
    await asyncio.sleep(1.1)  # the store's counts are kept for a second
    figures = (await client.get("/api/v1/stats", headers=backend_headers())).json()["notifications"]
    assert figures["total"] == figures["last_minute"] == figures["last_hour"] == 3
    assert figures["by_type"] == {"invoice.paid": 2, "task.assigned": 1}


async def test_published_rows_are_rebuilt_when_connections_change_or_grow_old(app) -> None:
    from tidings import cluster as cluster_module
    from tidings.models import Principal

    tidings = app.state.tidings
    cluster, hub = tidings.cluster, tidings.hub
    conn = hub.connection(Principal(user="rows-a"))
    hub.register(conn, hold=False)
    first = await cluster._published_rows()
    assert [r[1] for r in orjson.loads(orjson.dumps(first))] == ["rows-a"]
    for _ in range(cluster_module.ROWS_REFRESH - 1):  # nobody came or went: the same bytes
        assert await cluster._published_rows() is first
    assert await cluster._published_rows() is not first  # too old: rebuilt
    other = hub.connection(Principal(user="rows-b"))
    hub.register(other, hold=False)
    rows = orjson.loads(orjson.dumps(await cluster._published_rows()))
    assert sorted(r[1] for r in rows) == ["rows-a", "rows-b"]
    hub.unregister(conn)
    rows = orjson.loads(orjson.dumps(await cluster._published_rows()))
    assert [r[1] for r in rows] == ["rows-b"]
    hub.unregister(other)


async def test_the_test_notification_reaches_the_users_inbox(app, client) -> None:
    sent = await client.post("/api/v1/test", json={"user": "carol"}, headers=backend_headers())
    assert sent.status_code == 201
    assert sent.json()["type"] == "test"
    inbox = (
        await client.get("/api/v1/me/notifications", headers=user_headers(app, "carol"))
    ).json()
    assert [item["id"] for item in inbox["items"]] == [sent.json()["id"]]


@pytest.mark.parametrize("query", ["limit=100000", "limit=0", "user=", "limit=x"])
async def test_bad_connection_queries_are_422(client, query) -> None:
    response = await client.get(f"/api/v1/connections?{query}", headers=backend_headers())
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"


async def test_bad_test_bodies_are_422(client) -> None:
    for body in ({}, {"user": ""}, {"user": "a" * 201}, {"user": "a", "extra": 1}):
        response = await client.post("/api/v1/test", json=body, headers=backend_headers())
        assert response.status_code == 422, body


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            total += float(match.group(2))
    return total


async def test_metrics_count_creates_by_type_and_requests_by_route(client) -> None:
    kind = f"metric.{uuid.uuid4().hex[:6]}"
    before = (await client.get("/metrics")).text
    for _ in range(2):
        body = {"to": {"users": ["dave"]}, "title": "t", "type": kind, "level": "warning"}
        await client.post("/api/v1/notifications", json=body, headers=backend_headers())
    await client.get("/api/v1/me/notifications/0000000000000001")
    after = (await client.get("/metrics")).text
    created = "tidings_notifications_created_total"
    assert metric(after, created, type=kind, level="warning") == 2
    route = {"method": "POST", "route": "/api/v1/notifications", "status": "201"}
    requests = "tidings_http_requests_total"
    assert metric(after, requests, **route) == metric(before, requests, **route) + 2
    template = {
        "method": "GET",
        "route": "/api/v1/me/notifications/{notification_id}",
        "status": "401",
    }
    assert metric(after, requests, **template) >= 1
    assert "tidings_delivery_latency_seconds_bucket" in after


# -- real server processes -----------------------------------------------------------------------

FAST = {"TIDINGS_STATS_INTERVAL": "0.3", "TIDINGS_HEARTBEAT": "5"}


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with throwaway_postgres("tidings_ops") as url:
        yield url


@pytest.fixture
def two_servers(tmp_path: Path, postgres_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = {
        **FAST,
        "TIDINGS_DATABASE_URL": postgres_url,
        "TIDINGS_BROKER_URL": shared_redis_url(),
        "TIDINGS_BROKER_PREFIX": f"tidings-ops-{uuid.uuid4().hex[:8]}:",
        "TIDINGS_CREATE_RATE": "0.1",
        "TIDINGS_CREATE_BURST": "3",
    }
    with server_pair(tmp_path, **env) as pair:
        yield pair


async def stats(server: ServerProcess) -> dict:
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
        response = await http.get("/api/v1/stats", headers=BACKEND)
    assert response.status_code == 200, response.text
    return response.json()


async def listed(server: ServerProcess, user: str) -> list[dict]:
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
        response = await http.get("/api/v1/connections", params={"user": user}, headers=BACKEND)
    assert response.status_code == 200, response.text
    return response.json()["items"]


@pytest.mark.redis
@pytest.mark.postgres
async def test_stats_and_connections_cover_every_process_until_one_dies(two_servers) -> None:
    first, second = two_servers
    alice, bob = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    ws = await websockets.connect(
        f"{first.ws}?token={token(alice)}", user_agent_header="ops-test/1"
    )
    await ws.recv()  # welcome
    stream = f"/api/v1/me/stream?token={token(bob)}"
    async with (
        httpx.AsyncClient(base_url=second.http, timeout=10) as http,
        aconnect_sse(http, "GET", stream) as source,
    ):
        events = source.aiter_sse()
        assert (await anext(events)).event == "welcome"

        async def both_seen() -> bool:
            # Each process counts itself live and the other from its last snapshot.
            for server in (first, second):
                figures = await stats(server)
                if figures["processes"] != 2 or figures["connections"]["total"] != 2:
                    return False
            return True

        await wait_until(both_seen, within=5, what="both processes in the stats")
        figures = await stats(second)
        assert figures["connections"] == {"websocket": 1, "sse": 1, "total": 2}
        assert figures["users_online"] == 2
        [seen] = await listed(second, alice)
        assert seen["transport"] == "websocket"
        assert seen["user_agent"] == "ops-test/1"
        assert seen["process"] != (await listed(second, bob))[0]["process"]
        assert set(seen) == {
            "id", "user", "transport", "process", "connected_at", "last_activity", "user_agent"
        }  # fmt: skip
        # A process that dies without a word drops out within a few intervals.
        assert second.process is not None
        second.process.send_signal(signal.SIGKILL)
        second.process.wait(5)

        async def gone() -> bool:
            figures = await stats(first)
            return figures["processes"] == 1 and await listed(first, bob) == []

        await wait_until(gone, within=10, what="the killed process dropping out")
    assert (await stats(first))["connections"]["total"] == 1
    await ws.close()


@pytest.mark.redis
@pytest.mark.postgres
async def test_create_rate_limits_hold_across_processes(two_servers) -> None:
    first, second = two_servers
    body = {"to": {"users": ["eve"]}, "title": "t"}
    statuses = []
    for server in (first, second, first, second):
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
            response = await http.post("/api/v1/notifications", json=body, headers=BACKEND)
            statuses.append(response.status_code)
    assert statuses == [201, 201, 201, 429]
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["error"]["code"] == "rate_limited"


@pytest.fixture
async def two_workers(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(
        tmp_path,
        **FAST,
        TIDINGS_BROKER_URL=shared_redis_url(),
        TIDINGS_BROKER_PREFIX=f"tidings-ops-{uuid.uuid4().hex[:8]}:",
        TIDINGS_WORKERS="2",
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.redis
async def test_metrics_sum_every_worker(two_workers) -> None:
    kind = f"w.{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=two_workers.http, timeout=10) as http:
        for _ in range(8):  # new connections: the kernel spreads them over both workers
            async with httpx.AsyncClient(base_url=two_workers.http, timeout=10) as fresh:
                body = {"to": {"users": ["f"]}, "title": "t", "type": kind}
                assert (
                    await fresh.post("/api/v1/notifications", json=body, headers=BACKEND)
                ).status_code == 201
        for _ in range(4):  # whichever worker answers, the sum is the same
            async with httpx.AsyncClient(base_url=two_workers.http, timeout=10) as fresh:
                text = (await fresh.get("/metrics")).text
            assert metric(text, "tidings_notifications_created_total", type=kind, level="info") == 8
        figures = (await http.get("/api/v1/stats", headers=BACKEND)).json()
        assert figures["processes"] == 2
