"""Webhooks across real ``tidings serve`` processes: connection events, kill -9 in the
middle of failing and hanging deliveries, and two processes sharing one PostgreSQL queue."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from realtime_helpers import API_KEY, ServerProcess, throwaway_postgres, token, wait_until
from webhook_receiver import HANG, Receiver

SECRET = "whsec-processes"
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def webhook_server(workdir: Path, url: str, **env: str) -> ServerProcess:
    return ServerProcess(
        workdir,
        TIDINGS_WEBHOOK_URLS=url,
        TIDINGS_WEBHOOK_SECRET=SECRET,
        TIDINGS_WEBHOOK_TIMEOUT="1",  # a lease of 3.5 s
        **env,
    )


async def create_many(base: str, count: int, prefix: str) -> list[str]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        made = []
        for n in range(count):
            response = await client.post(
                "/api/v1/notifications",
                json={"to": {"users": ["ana"]}, "title": f"{prefix} {n}"},
                headers=HEADERS,
            )
            assert response.status_code == 201, response.text
            made.append(response.json()["id"])
        return made


def created_ids(receiver: Receiver) -> list[str]:
    return [b["data"]["notification"]["id"] for b in receiver.accepted("notification.created")]


async def test_kill_9_with_deliveries_failing_and_hanging_loses_nothing(tmp_path) -> None:
    with Receiver(hang_seconds=3) as receiver:
        receiver.default = 500  # the receiver is down
        server = webhook_server(tmp_path, receiver.url).start()
        try:
            async with websockets.connect(f"{server.ws}?token={token('ana')}") as ws:
                welcome = await ws.recv()
            made = await create_many(server.http, 10, "while failing")
            await wait_until(lambda: len(receiver.deliveries) >= 5, 5, "failed attempts")
            receiver.default = HANG  # now it hangs: some deliveries are mid-send below
            made += await create_many(server.http, 10, "while hanging")
            await wait_until(lambda: receiver.deliveries[-1].status == HANG, 5)
            server.process.kill()  # kill -9, right after the last acknowledged create
            server.wait(5)
            receiver.default = 200
            server.start()
            await wait_until(lambda: set(created_ids(receiver)) >= set(made), 20, "all 20")
            await wait_until(lambda: len(receiver.accepted("connection.closed")) == 1, 5)
        finally:
            server.stop()
    assert all(d.signed_with(SECRET) for d in receiver.deliveries)
    [opened] = receiver.accepted("connection.opened")
    [closed] = receiver.accepted("connection.closed")
    connection = re.search(rb'"connection":"([0-9a-f]+)"', welcome.encode()).group(1).decode()
    assert opened["data"] == {"user": "ana", "connection": connection, "transport": "ws"}
    assert closed["data"]["connection"] == connection and closed["data"]["user"] == "ana"


@pytest.fixture
def shared_postgres() -> Iterator[str]:
    with throwaway_postgres("tidings_wh") as url:
        yield url


@pytest.mark.postgres
async def test_two_processes_on_postgresql_send_each_event_once(
    tmp_path, shared_postgres: str
) -> None:
    # Every first attempt fails: retries of both processes' events come due together.
    with Receiver(first_attempts=503) as receiver:
        servers = [
            webhook_server(tmp_path / name, receiver.url, TIDINGS_DATABASE_URL=shared_postgres)
            for name in ("a", "b")
        ]
        for server in servers:
            server.workdir.mkdir()
        await asyncio.gather(*(asyncio.to_thread(server.start) for server in servers))
        try:
            made = [
                i
                for part in await asyncio.gather(
                    *(create_many(s.http, 30, s.workdir.name) for s in servers)
                )
                for i in part
            ]
            await wait_until(lambda: len(created_ids(receiver)) >= 60, 20, "all 60")
            await asyncio.sleep(1.5)  # a second send would come within a poll or two
            sent = [await sent_by(server) for server in servers]
        finally:
            for server in servers:
                server.stop()
    counts = Counter(created_ids(receiver))
    assert set(counts) == set(made)
    assert max(counts.values()) == 1, "an event was sent twice"
    assert sum(sent) == 60
    print(f"deliveries sent by each process: {sent}")


async def sent_by(server: ServerProcess) -> int:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{server.http}/metrics")).text
    found = re.search(r'^tidings_webhook_deliveries_total\{outcome="sent"\} (\S+)$', text, re.M)
    return int(float(found.group(1))) if found else 0
