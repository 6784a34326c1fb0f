"""Cluster-wide figures: every process publishes a snapshot of itself; stats read them all.

Each process builds a :class:`Snapshot` (its live connections and counters) every
``TIDINGS_STATS_INTERVAL`` seconds and publishes it to a :class:`Directory`: in memory
for one process, in Redis (under the broker's prefix, with a TTL of two intervals and a
half, at least 3 s) when there are several, so a process that dies drops out on its own. Reads
combine the other processes' last snapshots with a fresh one of this process.

The same loop turns the hub's running totals (deliveries per transport, broker
reconnects and outage time, live connections) into Prometheus figures, so the hot path
only bumps plain integers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tidings import ids, telemetry
from tidings.errors import TidingsError
from tidings.tasks import BackgroundTasks

if TYPE_CHECKING:
    from tidings.app import App

log = logging.getLogger("tidings.cluster")

TRANSPORT_NAMES = {"ws": "websocket", "sse": "sse"}
ROW_SLICE = 1_000
"""Connections turned into snapshot rows between two turns of the event loop."""
ROWS_REFRESH = 5
"""Intervals a process republishes its encoded rows while no connection came or went,
so their last-activity times are at most this many intervals old. At 12,500
connections a worker spent a tenth of its CPU rebuilding and encoding them every
interval (profile of ``bench.fifty``)."""


@dataclass(slots=True)
class Snapshot:
    """One process's figures at one moment (JSON in Redis)."""

    process: str
    at: float
    connections: list[list[Any]] | orjson.Fragment = field(default_factory=list)
    """Compact rows, see :func:`row`; as published, already encoded (see
    :meth:`Cluster._published_rows`)."""
    deliveries: int = 0
    slow_consumer_closes: int = 0
    created: int = 0
    latency: list[int] = field(default_factory=list)
    """Cumulative counts of the latency histogram, one per bucket of :data:`LATENCY_BOUNDS`."""

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "process": self.process,
                "at": self.at,
                "connections": self.connections,
                "deliveries": self.deliveries,
                "slow_consumer_closes": self.slow_consumer_closes,
                "created": self.created,
                "latency": self.latency,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Snapshot:
        value = orjson.loads(raw)
        return cls(
            process=value["process"],
            at=value["at"],
            connections=value["connections"],
            deliveries=value["deliveries"],
            slow_consumer_closes=value["slow_consumer_closes"],
            created=value.get("created", 0),
            latency=value.get("latency", []),
        )


class Directory(Protocol):
    """Where processes leave their snapshots for each other."""

    shared: bool
    """Whether other processes read it (else publishing is pointless)."""

    async def publish(self, snapshot: Snapshot, ttl: float) -> None: ...

    async def others(self, me: str) -> list[Snapshot]:
        """Every live process's last snapshot but ``me``'s."""

    async def remove(self, process: str) -> None: ...

    async def close(self) -> None: ...


class MemoryDirectory:
    """One process: nobody else to read (publishing is skipped, see ``shared``)."""

    shared = False

    def __init__(self) -> None:
        self._snapshots: dict[str, tuple[Snapshot, float]] = {}

    async def publish(self, snapshot: Snapshot, ttl: float) -> None:
        self._snapshots[snapshot.process] = (snapshot, time.monotonic() + ttl)

    async def others(self, me: str) -> list[Snapshot]:
        now = time.monotonic()
        return [s for name, (s, until) in self._snapshots.items() if name != me and until > now]

    async def remove(self, process: str) -> None:
        self._snapshots.pop(process, None)

    async def close(self) -> None:
        return None


class RedisDirectory:
    """Snapshots as keys with a TTL, indexed by a sorted set scored by expiry time."""

    shared = True

    def __init__(self, url: str, *, prefix: str) -> None:
        self._client = Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
        self._index = f"{prefix}processes"
        self._key = f"{prefix}process:"

    async def publish(self, snapshot: Snapshot, ttl: float) -> None:
        expires = time.time() + ttl
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.set(self._key + snapshot.process, snapshot.to_json(), px=int(ttl * 1000))
            pipe.zadd(self._index, {snapshot.process: expires})
            pipe.zremrangebyscore(self._index, "-inf", time.time())
            await _translated(pipe.execute())

    async def others(self, me: str) -> list[Snapshot]:
        names = await _translated(self._client.zrangebyscore(self._index, time.time(), "+inf"))
        names = [n.decode() for n in names if n.decode() != me]
        if not names:
            return []
        raws = await _translated(self._client.mget([self._key + n for n in names]))
        return [Snapshot.from_json(raw) for raw in raws if raw is not None]

    async def remove(self, process: str) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.delete(self._key + process)
            pipe.zrem(self._index, process)
            await _translated(pipe.execute())

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._client.aclose()


async def _translated(awaitable: Any) -> Any:
    try:
        return await awaitable
    except (RedisError, OSError, TimeoutError) as exc:
        raise TidingsError(f"Redis unavailable: {exc}") from None


def create_directory(broker_url: str, *, prefix: str) -> Directory:
    if broker_url.startswith("redis"):
        return RedisDirectory(broker_url, prefix=prefix)
    return MemoryDirectory()


def _sum_columns(rows: Iterable[list[int]]) -> list[int]:
    totals = [0] * len(telemetry.LATENCY_BOUNDS)
    for row in rows:
        for index, value in enumerate(row[: len(totals)]):
            totals[index] += value
    return totals


def row(conn: Any) -> list[Any]:
    """A connection as a snapshot keeps it: id, user, transport, connected, active, agent."""
    last = conn.heard_at
    if conn.last_id is not None:  # the newest notification written: its id holds its time
        last = max(last, ids.ms_of(int(conn.last_id, 16)) / 1000)
    return [conn.id, conn.user, conn.transport, conn.connected_at, last, conn.user_agent]


def _rows(conns: Iterable[Any]) -> list[list[Any]]:
    return [row(conn) for conn in conns if not conn.closed]


def describe(values: list[Any], process: str) -> dict[str, Any]:
    """A snapshot row as operators see it (``GET /api/v1/connections``)."""
    conn_id, user, transport, connected_at, last, user_agent = values
    return {
        "id": conn_id,
        "user": user,
        "transport": TRANSPORT_NAMES.get(transport, transport),
        "process": process,
        "connected_at": _iso(connected_at),
        "last_activity": _iso(max(last, connected_at)),
        "user_agent": user_agent,
    }


def _iso(seconds: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        + f".{int(seconds % 1 * 1000):03d}Z"
    )


class Cluster:
    """This process's publisher, and the cluster-wide reads. See the module docstring."""

    def __init__(self, app: App, directory: Directory, *, interval: float) -> None:
        self.app = app
        self.directory = directory
        self.interval = interval
        # Silent for this long = gone. The floor keeps a process whose loop is busy for a
        # moment (a burst, a slow disk) from vanishing from the figures at short intervals.
        self.ttl = max(2.5 * interval, 3.0)
        self.process = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        self._tasks = BackgroundTasks()
        self._exported: dict[str, float] = {}
        self._figures: tuple[float, dict[str, Any]] | None = None
        self._rows: tuple[int, int, orjson.Fragment] | None = None
        """(hub generation, intervals published, encoded rows): see :meth:`_published_rows`."""

    async def start(self) -> None:
        self._tasks.start(self._publish_forever(), name="tidings-cluster")

    def alive(self) -> dict[str, bool]:
        """Whether the publisher still runs (``/readyz``)."""
        return self._tasks.alive()

    async def stop(self) -> None:
        await self._tasks.stop()
        with contextlib.suppress(TidingsError):
            await self.directory.remove(self.process)
        await self.directory.close()

    # -- this process ------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return self._snapshot(_rows(self.app.hub.live()))

    async def _published_rows(self) -> orjson.Fragment:
        """This process's rows, encoded; rebuilt when a connection came or went, or after
        :data:`ROWS_REFRESH` intervals, and then :data:`ROW_SLICE` at a time (at 12,500
        connections they cost 11 ms: a stall the loop's deliveries would wait out)."""
        hub = self.app.hub
        if self._rows is not None:
            generation, age, encoded = self._rows
            if generation == hub.generation and age < ROWS_REFRESH:
                self._rows = (generation, age + 1, encoded)
                return encoded
        generation = hub.generation
        rows: list[list[Any]] = []
        live = hub.live()
        for start in range(0, len(live), ROW_SLICE):
            if start:
                await asyncio.sleep(0)
            rows += _rows(live[start : start + ROW_SLICE])
        encoded = orjson.Fragment(orjson.dumps(rows))
        self._rows = (generation, 1, encoded)
        return encoded

    def _snapshot(self, rows: list[list[Any]] | orjson.Fragment) -> Snapshot:
        hub = self.app.hub
        return Snapshot(
            process=self.process,
            at=time.time(),
            connections=rows,
            deliveries=sum(hub.deliveries().values()),
            slow_consumer_closes=hub.slow_consumers,
            created=int(telemetry.process_total(telemetry.CREATED)),
            latency=telemetry.latency_counts(),
        )

    async def _publish_forever(self) -> None:
        failing = False
        while True:
            try:
                self.export_metrics()
                if self.directory.shared:
                    snapshot = self._snapshot(await self._published_rows())
                    await self.directory.publish(snapshot, ttl=self.ttl)
                failing = False
            except TidingsError as exc:
                if not failing:
                    log.warning("process figures not published (%s); retrying", exc)
                failing = True
            except Exception:
                log.exception("publishing process figures failed")
            await asyncio.sleep(self.interval)

    def export_metrics(self) -> None:
        """Move the hub's and the broker's running totals into Prometheus."""
        hub = self.app.hub
        for transport, total in hub.deliveries().items():
            self._advance(telemetry.DELIVERED.labels(TRANSPORT_NAMES.get(transport, transport)),
                          f"delivered:{transport}", total)  # fmt: skip
        broker = self.app.broker
        self._advance(telemetry.BROKER_RECONNECTS, "reconnects", getattr(broker, "reconnects", 0))
        self._advance(telemetry.BROKER_OUTAGE, "outage", getattr(broker, "outage_seconds", 0.0))
        live: dict[str, int] = dict.fromkeys(TRANSPORT_NAMES.values(), 0)
        for transport, count in hub.open_by_transport().items():
            name = TRANSPORT_NAMES.get(transport, transport)
            live[name] = live.get(name, 0) + count
        for name, count in live.items():
            telemetry.OPEN_CONNECTIONS.labels(name).set(count)

    def _advance(self, counter: Any, name: str, total: float) -> None:
        delta = total - self._exported.get(name, 0)
        if delta > 0:
            counter.inc(delta)
            self._exported[name] = total

    # -- the cluster -------------------------------------------------------------------

    async def snapshots(self) -> list[Snapshot]:
        """A fresh snapshot of this process and the others' latest (if reachable)."""
        mine = self.snapshot()
        try:
            others = await self.directory.others(self.process)
        except TidingsError as exc:
            log.warning("other processes' figures unavailable: %s", exc)
            others = []
        return [mine, *others]

    async def connections(self, user: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        found = [
            (values, snap.process)
            for snap in await self.snapshots()
            for values in snap.connections
            if user is None or values[1] == user
        ]
        found.sort(key=lambda item: item[0][3], reverse=True)
        return [describe(values, process) for values, process in found[:limit]]

    async def stats(self) -> dict[str, Any]:
        snaps = await self.snapshots()
        counts = dict.fromkeys(TRANSPORT_NAMES.values(), 0)
        users: set[str] = set()
        for snap in snaps:
            for _, user, transport, *_ in snap.connections:
                name = TRANSPORT_NAMES.get(transport, transport)
                counts[name] = counts.get(name, 0) + 1
                users.add(user)
        return {
            "connections": {**counts, "total": sum(counts.values())},
            "users_online": len(users),
            "notifications": await self._notification_figures(),
            "deliveries": sum(s.deliveries for s in snaps),
            "slow_consumer_closes": sum(s.slow_consumer_closes for s in snaps),
            "processes": len(snaps),
            "created": sum(s.created for s in snaps),
            "latency": {
                "le": list(telemetry.LATENCY_BOUNDS),
                "counts": _sum_columns(s.latency for s in snaps),
            },
        }

    async def _notification_figures(self) -> dict[str, Any]:
        """The store's counts, kept for a second: stats pages poll, counting is a scan."""
        now = time.monotonic()
        if self._figures is None or now - self._figures[0] > 1.0:
            self._figures = (now, await self.app.store.figures(now_ms=ids.time_ms()))
        return self._figures[1]
