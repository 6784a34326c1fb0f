"""Faults: real processes, real Redis and PostgreSQL, and the promise still holds.

Each scenario runs a load through the servers while followers read every user's stream
(WebSocket and SSE, resuming with ``after`` / ``Last-Event-ID``), injects its fault
over and over until ``TIDINGS_FAULT_SECONDS`` are up, heals, and then checks every
stream and every inbox: nothing acknowledged lost, nothing twice, nothing out of order.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from realtime_helpers import ServerProcess, wait_until

from faults.checker import Report, Stream, check
from faults.clients import Follower, percentile
from faults.harness import SERVER_ENV, Cast, Run, crash, create, drive, running, start
from faults.proxy import TcpProxy
from faults.services import PausableRedis, PrivatePostgres

pytestmark = [pytest.mark.faults]

HUNG_CREATE_P99 = 1.0
"""Seconds: creates stay this quick (p99) while Redis is hung."""


def servers(tmp_path: Path, count: int, **env: str) -> list[ServerProcess]:
    return [ServerProcess(tmp_path, **{**SERVER_ENV, **env}) for _ in range(count)]


def shared(database: str, broker: str) -> dict[str, str]:
    return {"TIDINGS_DATABASE_URL": database, "TIDINGS_BROKER_URL": broker}


async def cycle(run: Run, fault: Callable[[], Awaitable[None]], lasts: float, gap: float) -> None:
    """Inject ``fault`` (which heals itself after ``lasts`` seconds) again and again."""
    await asyncio.sleep(min(gap, run.seconds * 0.2))
    while True:
        await fault()
        await asyncio.sleep(gap)
        if run.time_left() < lasts + 0.5:
            return


def verdict(run: Run, report: Report, record) -> None:
    record(run.figures)
    assert report.ok, f"{run.name}: {run.figures}\n{report.describe()}"


# -- churn ---------------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.postgres
async def test_clients_bouncing_between_two_processes(
    tmp_path, shared_postgres_url, private_redis, record
) -> None:
    """Every connection lives 0.2-0.6 s and the next goes to the other process."""
    pair = servers(tmp_path, 2, **shared(shared_postgres_url, private_redis.url))
    async with running(*pair):
        run = Run("reconnect churn, 2 processes", pair, Cast.make())
        run.follow(hold=(0.2, 0.6))
        report = await drive(run)
    verdict(run, report, record)


# -- process restarts ------------------------------------------------------------------------


async def test_kill_9_loses_no_acknowledged_create_on_sqlite(tmp_path, record) -> None:
    """One process (SQLite, memory broker) killed mid-load and restarted, clients attached."""
    [server] = servers(tmp_path, 1)
    async with running(server):
        run = Run("kill -9, sqlite, 1 process", [server], Cast.make())
        run.follow()

        async def kill() -> None:
            run.inject("kill -9")
            await crash(server, signal.SIGKILL)
            await start(server)

        report = await drive(run, lambda r: cycle(r, kill, lasts=1.5, gap=2.0))
    verdict(run, report, record)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
async def test_restarts_with_clients_connected(
    tmp_path, shared_postgres_url, private_redis, record, how: signal.Signals
) -> None:
    """Two processes restarted in turn; their clients fail over to the other one."""
    pair = servers(tmp_path, 2, **shared(shared_postgres_url, private_redis.url))
    async with running(*pair):
        name = "sigterm" if how == signal.SIGTERM else "kill -9"
        run = Run(f"{name} restarts, 2 processes", pair, Cast.make())
        run.follow()
        turn = 0

        async def restart_one() -> None:
            nonlocal turn
            victim = pair[turn % 2]
            turn += 1
            run.inject(name)
            await crash(victim, how)
            await start(victim)

        report = await drive(run, lambda r: cycle(r, restart_one, lasts=2.0, gap=1.5))
    verdict(run, report, record)


# -- Redis -------------------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.postgres
async def test_redis_killed_and_restarted(
    tmp_path, shared_postgres_url, private_redis: PausableRedis, record
) -> None:
    pair = servers(tmp_path, 2, **shared(shared_postgres_url, private_redis.url))
    async with running(*pair):
        run = Run("redis killed, 2 processes", pair, Cast.make())
        run.follow(hold=(0.5, 1.5))

        async def kill_redis() -> None:
            run.inject("redis kill")
            await asyncio.to_thread(private_redis.stop)
            await asyncio.sleep(1.5)
            await asyncio.to_thread(private_redis.start)

        report = await drive(run, lambda r: cycle(r, kill_redis, lasts=1.5, gap=2.0))
    verdict(run, report, record)


@pytest.mark.redis
@pytest.mark.postgres
async def test_redis_hung_stalls_nothing(
    tmp_path, shared_postgres_url, private_redis: PausableRedis, record
) -> None:
    """SIGSTOP on redis-server: creates are still acknowledged quickly (defect 9)."""
    pair = servers(tmp_path, 2, **shared(shared_postgres_url, private_redis.url))
    async with running(*pair):
        run = Run("redis hung (SIGSTOP), 2 processes", pair, Cast.make())
        run.follow()
        hung: list[tuple[float, float]] = []

        async def hang_redis() -> None:
            run.inject("redis SIGSTOP")
            began = time.monotonic()
            private_redis.hang()
            try:
                await asyncio.sleep(2.5)
            finally:
                private_redis.resume()
            hung.append((began, time.monotonic()))

        report = await drive(run, lambda r: cycle(r, hang_redis, lasts=2.5, gap=1.5))
    assert run.load is not None
    during = [
        latency
        for began, ended in hung
        for latency in run.load.latencies(began, ended - 0.2, failed_as=float("inf"))
    ]
    run.figures["hung_creates"] = len(during)
    run.figures["hung_p99_ms"] = round(percentile(during, 0.99) * 1000, 1)
    record(run.figures)
    assert during, "no create was attempted while Redis was hung"
    assert percentile(during, 0.99) < HUNG_CREATE_P99, run.figures
    assert report.ok, f"{run.name}: {run.figures}\n{report.describe()}"


@pytest.mark.redis
@pytest.mark.postgres
async def test_one_process_cut_off_from_redis(
    tmp_path, shared_postgres_url, private_redis: PausableRedis, record
) -> None:
    """Process B reaches Redis through a proxy that is cut (blackhole, then reset) and healed."""
    proxy = await TcpProxy(private_redis.port).start()
    try:
        a, b = servers(tmp_path, 2, **shared(shared_postgres_url, private_redis.url))
        b.env["TIDINGS_BROKER_URL"] = f"redis://127.0.0.1:{proxy.port}/0"
        async with running(a, b):
            run = Run("B cut off from redis (proxy)", [a, b], Cast.make())
            run.follow(hold=(0.3, 1.0))
            modes = ["blackhole", "reset"]

            async def partition() -> None:
                mode = modes[sum(run.faults.values()) % 2]
                run.inject(f"cut {mode}")
                proxy.cut(mode)  # type: ignore[arg-type]
                await asyncio.sleep(2.0)
                proxy.heal()

            report = await drive(run, lambda r: cycle(r, partition, lasts=2.0, gap=1.5))
    finally:
        await proxy.close()
    verdict(run, report, record)


@pytest.mark.redis
@pytest.mark.postgres
async def test_resume_on_the_other_process_after_a_partition_skips_nothing(
    tmp_path, shared_postgres_url, private_redis: PausableRedis
) -> None:
    """Defect 5 as it was found: B cut off; Y created through B (201), then W through A and
    delivered live on A; a client resuming on B with ``after=W`` must have had Y already."""
    proxy = await TcpProxy(private_redis.port).start()
    try:
        a, b = servers(tmp_path, 2, **shared(shared_postgres_url, private_redis.url))
        b.env["TIDINGS_BROKER_URL"] = f"redis://127.0.0.1:{proxy.port}/0"
        async with running(a, b):
            user = f"p-{time.monotonic_ns()}"
            start_id = await create(a, {"users": ["someone-else"]})
            on_a = Follower("ws:a", user, [a], after=start_id)
            stop = asyncio.Event()
            readers = [asyncio.create_task(on_a.run(stop))]
            await asyncio.sleep(0.5)
            proxy.cut("blackhole")
            y = await asyncio.wait_for(create(b, {"users": [user]}, "Y"), 15)
            w = await create(a, {"users": [user]}, "W")
            await wait_until(lambda: w in on_a.received, within=10, what="W live on A")
            proxy.heal()
            on_b = Follower("ws:b", user, [b], after=w)
            readers.append(asyncio.create_task(on_b.run(stop)))
            await asyncio.sleep(2)
            stop.set()
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    finally:
        await proxy.close()
    acked = {y: frozenset({user}), w: frozenset({user})}
    streams = [Stream(f.name, f.user, f.after, f.received) for f in (on_a, on_b)]
    report = check(acked, streams, {})
    assert report.ok, f"Y={y}, W={w}: {report.describe()}"


# -- PostgreSQL ----------------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.postgres
async def test_postgres_restarted(
    tmp_path, private_postgres: PrivatePostgres, private_redis: PausableRedis, record
) -> None:
    pair = servers(tmp_path, 2, **shared(private_postgres.url, private_redis.url))
    async with running(*pair):
        run = Run("postgres restarted, 2 processes", pair, Cast.make())
        run.follow(hold=(0.5, 1.5))

        async def restart_postgres() -> None:
            run.inject("postgres restart")
            await asyncio.to_thread(private_postgres.stop, "fast")
            await asyncio.sleep(1.0)
            await asyncio.to_thread(private_postgres.start)

        report = await drive(run, lambda r: cycle(r, restart_postgres, lasts=2.0, gap=2.0))
    verdict(run, report, record)
