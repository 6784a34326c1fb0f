"""The clients of a fault run: followers that keep reading one user's stream (WebSocket
or SSE, reconnecting and resuming from the last id they saw) and a load generator that
creates notifications and remembers every one that was acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import websockets
from httpx_sse import EventSource
from realtime_helpers import API_KEY, ServerProcess, token
from websockets.exceptions import ConnectionClosed, InvalidStatus

BACKEND = {"Authorization": f"Bearer {API_KEY}"}
RETRY = (0.05, 0.25)
"""Seconds a follower waits before retrying a refused or failed connect."""


@dataclass
class Follower:
    """Follows one user's stream, resuming from the last id seen on every reconnect.

    ``hold`` is how long each connection lives (a random span, seconds) before the
    client drops it; ``None`` keeps it until the server ends it. Each new connection
    goes to the next of ``servers``: a client bouncing between processes.
    """

    name: str
    user: str
    servers: Sequence[ServerProcess]
    after: str
    transport: str = "ws"
    hold: tuple[float, float] | None = None
    roles: Sequence[str] = ()
    received: list[str] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    connects: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    resyncs: int = 0

    @property
    def resume_point(self) -> str:
        """The newest id seen, as a client that keeps only that would resume."""
        return self.received[-1] if self.received else self.after

    async def run(self, stop: asyncio.Event) -> None:
        for attempt in itertools.count():
            if stop.is_set():
                return
            server = self.servers[attempt % len(self.servers)]
            span = random.uniform(*self.hold) if self.hold else None
            try:
                if self.transport == "ws":
                    await self._ws(server, span, stop)
                else:
                    await self._sse(server, span, stop)
            except TimeoutError:
                pass  # the hold ended: drop the connection and come back
            except (OSError, ConnectionClosed, InvalidStatus, httpx.HTTPError) as exc:
                self.failures[_reason(exc)] += 1
                await asyncio.sleep(random.uniform(*RETRY))

    def _got(self, notification_id: str) -> None:
        self.received.append(notification_id)
        self.arrivals.append(time.monotonic())

    async def _ws(self, server: ServerProcess, span: float | None, stop: asyncio.Event) -> None:
        query = f"token={token(self.user, roles=list(self.roles))}&after={self.resume_point}"
        try:
            ws = await websockets.connect(
                f"{server.ws}?{query}", open_timeout=3, close_timeout=1, max_size=None
            )
        except TimeoutError:
            raise OSError("open timed out") from None
        try:
            async with asyncio.timeout(span):
                async for raw in ws:
                    frame = orjson.loads(raw)
                    kind = frame["type"]
                    if kind == "welcome":
                        self.connects += 1
                    elif kind == "notification":
                        self._got(frame["notification"]["id"])
                    elif kind == "ping":
                        await ws.send('{"type":"pong"}')
                    elif kind == "resync":
                        self.resyncs += 1
                    if stop.is_set():
                        break
            self.failures[f"closed {ws.close_code}"] += 1
            await asyncio.sleep(random.uniform(*RETRY))
        finally:
            # Half the drops are abrupt (a vanished client), half polite.
            if random.random() < 0.5 and ws.transport is not None:
                ws.transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 1)

    async def _sse(self, server: ServerProcess, span: float | None, stop: asyncio.Event) -> None:
        headers = {"Last-Event-ID": self.resume_point, "Accept": "text/event-stream"}
        url = f"{server.http}/api/v1/me/stream?token={token(self.user, roles=list(self.roles))}"
        timeout = httpx.Timeout(10, connect=3)
        async with (
            httpx.AsyncClient(timeout=timeout) as http,
            http.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code != 200:
                self.failures[f"http {response.status_code}"] += 1
                await asyncio.sleep(random.uniform(*RETRY))
                return
            async with asyncio.timeout(span):
                async for event in EventSource(response).aiter_sse():
                    if event.event == "welcome":
                        self.connects += 1
                    elif event.event == "notification":
                        self._got(event.id)
                    elif event.event == "resync":
                        self.resyncs += 1
                    elif event.event == "close":
                        self.failures[f"close {orjson.loads(event.data).get('code')}"] += 1
                    if stop.is_set():
                        break
            await asyncio.sleep(random.uniform(*RETRY))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, InvalidStatus):
        return f"http {exc.response.status_code}"
    if isinstance(exc, ConnectionClosed):
        return f"closed {exc.rcvd.code if exc.rcvd else None}"
    return type(exc).__name__


@dataclass(frozen=True)
class Audience:
    to: dict[str, Any]
    users: frozenset[str]


@dataclass
class Attempt:
    started: float
    latency: float
    server: int
    status: str


@dataclass
class Load:
    """Creates notifications at ``rate`` per second, round robin over ``servers``."""

    servers: Sequence[ServerProcess]
    audiences: Sequence[Audience]
    rate: float
    concurrency: int = 32
    timeout: float = 10
    extra: dict[str, Any] = field(default_factory=dict)
    """More fields for every create (a body, say)."""
    acked: dict[str, frozenset[str]] = field(default_factory=dict)
    sent_at: dict[str, float] = field(default_factory=dict)
    """Acknowledged id -> when its request started (monotonic)."""
    attempts: list[Attempt] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        pending: set[asyncio.Task[None]] = set()
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=self.timeout, limits=limits) as http:
            started = time.monotonic()
            for n in itertools.count():
                if stop.is_set():
                    break
                await asyncio.sleep(max(0.0, started + n / self.rate - time.monotonic()))
                await slots.acquire()
                task = asyncio.create_task(self._create(http, n, slots))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.gather(*pending)

    async def _create(self, http: httpx.AsyncClient, n: int, slots: asyncio.Semaphore) -> None:
        index = n % len(self.servers)
        audience = self.audiences[n % len(self.audiences)]
        body = {"to": audience.to, "type": "fault", "title": f"n{n}", **self.extra}
        began = time.monotonic()
        try:
            response = await http.post(
                f"{self.servers[index].http}/api/v1/notifications", json=body, headers=BACKEND
            )
            status = str(response.status_code)
            if response.status_code == 201:
                id_ = response.json()["id"]
                self.acked[id_] = audience.users
                self.sent_at[id_] = began
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        finally:
            slots.release()
        self.attempts.append(Attempt(began, time.monotonic() - began, index, status))

    def latencies(
        self, since: float = 0.0, until: float = float("inf"), *, failed_as: float | None = None
    ) -> list[float]:
        """Latency of every create started in [since, until]; ``failed_as`` replaces a
        failure's (``inf``: a failed create is never quick enough)."""
        return [
            a.latency if a.status == "201" or failed_as is None else failed_as
            for a in self.attempts
            if since <= a.started <= until
        ]

    def failures(self) -> Counter[str]:
        return Counter(a.status for a in self.attempts if a.status != "201")


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
