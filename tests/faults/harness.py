"""Runs one fault scenario: servers, followers, load and a fault script, then the check.

A scenario builds its servers, then calls :func:`drive` with a fault script (an async
function that injects faults until the run's deadline and leaves everything healed).
``drive`` starts the followers after a marker notification (so every connection is a
resume), runs the load for ``TIDINGS_FAULT_SECONDS``, waits for the streams to catch up,
lists every inbox and returns the checker's report with the run's figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from realtime_helpers import ServerProcess, token

from faults.checker import Report, Stream, check
from faults.clients import BACKEND, Audience, Follower, Load, percentile

SECONDS = float(os.environ.get("TIDINGS_FAULT_SECONDS", "5"))
"""How long each scenario's load runs (the bounded slice in CI; longer in scripts/faults)."""
DRAIN = float(os.environ.get("TIDINGS_FAULT_DRAIN", "10"))
"""Seconds the streams get to catch up once the load stops."""

SERVER_ENV = {
    "TIDINGS_HEARTBEAT": "2",
    "TIDINGS_RESUME_LIMIT": "20000",  # a resume must replay, never ask for a refetch
    "TIDINGS_RETENTION_MAX_ITEMS": "100000",
    "TIDINGS_OUTBOX_SIZE": "20000",
    "TIDINGS_SHUTDOWN_GRACE": "3",
    "TIDINGS_JWT_LEEWAY": "0",
}


async def start(server: ServerProcess) -> ServerProcess:
    return await asyncio.to_thread(server.start, 30)


async def stop(server: ServerProcess) -> None:
    await asyncio.to_thread(server.stop)


async def crash(server: ServerProcess, how: signal.Signals = signal.SIGKILL) -> None:
    """Signal the process and wait for it to go (SIGTERM: within the shutdown grace)."""
    process = server.process
    assert process is not None
    process.send_signal(how)
    await asyncio.to_thread(process.wait, 15)
    server.process = None


async def restart(server: ServerProcess, how: signal.Signals = signal.SIGKILL) -> None:
    await crash(server, how)
    await start(server)


async def create(server: ServerProcess, to: dict[str, Any], title: str = "marker") -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{server.http}/api/v1/notifications",
            json={"to": to, "title": title},
            headers=BACKEND,
        )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def inbox(server: ServerProcess, user: str, roles: Sequence[str] = ()) -> list[str]:
    """The user's whole inbox, newest first, paged as any client would."""
    headers = {"Authorization": f"Bearer {token(user, roles=list(roles))}"}
    listed: list[str] = []
    before: str | None = None
    async with httpx.AsyncClient(timeout=15) as http:
        while True:
            params: dict[str, Any] = {"limit": 100}
            if before:
                params["before"] = before
            response = await http.get(
                f"{server.http}/api/v1/me/notifications", params=params, headers=headers
            )
            response.raise_for_status()
            page = response.json()
            listed += [item["id"] for item in page["items"]]
            before = page["next_before"]
            if not before:
                return listed


@dataclass
class Cast:
    """The users of a run, their roles, and the audiences the load addresses."""

    users: list[str]
    roles: dict[str, list[str]]
    audiences: list[Audience]

    @classmethod
    def make(cls, count: int = 4) -> Cast:
        tag = uuid.uuid4().hex[:6]
        users = [f"f{tag}-{n}" for n in range(count)]
        role_a, role_b = f"ra-{tag}", f"rb-{tag}"
        half = count // 2
        roles = {u: [role_a] if i < half else [role_b] for i, u in enumerate(users)}
        everyone = frozenset(users)
        audiences = [Audience({"users": [u]}, frozenset({u})) for u in users]
        audiences += [
            Audience({"roles": [role_a]}, frozenset(users[:half])),
            Audience({"roles": [role_b]}, frozenset(users[half:])),
            Audience(
                {"users": [users[0]], "roles": [role_b]}, frozenset([users[0], *users[half:]])
            ),
            Audience({"all": True}, everyone),
        ]
        return cls(users, roles, audiences)


@dataclass
class Run:
    name: str
    servers: list[ServerProcess]
    cast: Cast
    rate: float = 40.0
    seconds: float = SECONDS
    followers: list[Follower] = field(default_factory=list)
    load: Load | None = None
    faults: Counter[str] = field(default_factory=Counter)
    deadline: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)

    def follow(
        self, transports: Sequence[str] = ("ws", "sse"), hold: tuple[float, float] | None = None
    ) -> None:
        """One follower per user and transport, each starting on another server and moving
        to the next one whenever it reconnects."""
        for i, user in enumerate(self.cast.users):
            for j, transport in enumerate(transports):
                n = (i + j) % len(self.servers)
                servers = [*self.servers[n:], *self.servers[:n]]
                self.followers.append(
                    Follower(
                        name=f"{transport}:{user}",
                        user=user,
                        servers=servers,
                        after="",
                        transport=transport,
                        hold=hold,
                        roles=self.cast.roles[user],
                    )
                )

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def inject(self, kind: str) -> None:
        self.faults[kind] += 1


Script = Callable[[Run], Awaitable[None]]


async def _idle(run: Run) -> None:
    return None


async def drive(run: Run, script: Script = _idle) -> Report:
    """Run the scenario; the report, with ``run.figures`` filled in."""
    first = run.servers[0]
    marker = await create(first, {"users": [f"marker-{uuid.uuid4().hex[:6]}"]})
    for follower in run.followers:
        follower.after = marker
    run.load = load = Load(run.servers, run.cast.audiences, rate=run.rate)
    stop_load, stop_followers = asyncio.Event(), asyncio.Event()
    readers = [asyncio.create_task(f.run(stop_followers)) for f in run.followers]
    began = time.monotonic()
    run.deadline = began + run.seconds
    try:
        async with asyncio.timeout(run.seconds + 120):
            producer = asyncio.create_task(load.run(stop_load))
            faults = asyncio.create_task(script(run))
            await asyncio.sleep(run.seconds)
            stop_load.set()
            await producer
            await faults  # the script leaves every server and service up again
            await _caught_up(run, load, within=DRAIN)
            await asyncio.sleep(0.5)  # late duplicates would show up here
    finally:
        stop_followers.set()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    inboxes = {user: await inbox(first, user, run.cast.roles[user]) for user in run.cast.users}
    streams = [Stream(f.name, f.user, f.after, list(f.received)) for f in run.followers]
    report = check(load.acked, streams, inboxes)
    latencies = load.latencies()
    failures: Counter[str] = Counter()
    for f in run.followers:
        failures.update(f.failures)
    run.figures = {
        "scenario": run.name,
        "seconds": round(time.monotonic() - began, 1),
        "processes": len(run.servers),
        "clients": len(run.followers),
        "faults": sum(run.faults.values()),
        "creates": len(load.attempts),
        "failed": len(load.attempts) - len(load.acked),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "connects": sum(f.connects for f in run.followers),
        "resyncs": sum(f.resyncs for f in run.followers),
        **report.figures(),
    }
    run.figures["notes"] = ", ".join(
        [f"{k} x{v}" for k, v in run.faults.items()]
        + [f"{k}: {v}" for k, v in load.failures().most_common(3)]
    )
    run.figures["client_errors"] = ", ".join(f"{k}: {v}" for k, v in failures.most_common(4))
    return report


async def _caught_up(run: Run, load: Load, within: float) -> None:
    """Wait until every follower holds everything owed to it (or ``within`` runs out)."""
    owed = {
        f.name: {i for i, users in load.acked.items() if f.user in users and i > f.after}
        for f in run.followers
    }
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(owed[f.name] <= set(f.received) for f in run.followers):
            return
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running(*servers: ServerProcess):
    """Start these servers (in parallel) and stop them all at the end, whatever happens."""
    try:
        await start(servers[0])  # it migrates the database; then the rest together
        await asyncio.gather(*(start(s) for s in servers[1:]))
        yield list(servers)
    finally:
        await asyncio.gather(*(stop(s) for s in servers), return_exceptions=True)
