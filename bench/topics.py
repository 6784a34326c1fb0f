"""Topics as rooms under load: fan-out with history on, history replay, presence churn.

    .venv/bin/python -m bench.topics [--subscribers 1000] [--rate 1000] [--seconds 5]
                                     [--broker memory:// | redis://127.0.0.1:6379/0]
                                     [--ceiling 0,2,5,10]

One tidings process (SQLite, the broker named) on loopback; the clients live in this
process (:mod:`bench.wsclient`), so latencies are measured on one clock:

Clients subscribe with ``batch: true``, as tidings.js does.

1. **fan-out**: ``--subscribers`` WebSocket clients subscribe to one topic; one client
   publishes ``--rate`` messages a second for ``--seconds`` (each carries its send
   time); latency is send to receipt, per subscriber and message. History is on (the
   default ``TIDINGS_TOPIC_HISTORY``), so every message is also appended to it.
   The ceiling: the same clients against :mod:`bench.peers.raw` (uvloop, the same
   frames, no filters, budget or broker), once per ``--ceiling`` linger in ms; tidings'
   figures are printed beside the best of them, with the ratios.
2. **replay**: a topic holds 100 messages; the same number of clients reconnect at
   once and subscribe with ``history: 100``; time from subscribe to its ack (which
   follows the 100 replayed messages), and that each got all 100.
3. **presence churn**: clients enter and leave 50 rooms (``presence: true`` subscribe,
   unsubscribe) at ``--churn`` operations a second; ack latency, a watcher's ``join``
   and ``leave`` frames in one room, and that room's final membership against the truth.

Prints a table with the ceiling where one applies and PASS/FAIL. Bounded in count and
time; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import uvloop

from bench import wsframes
from bench.procs import Server, cpu_seconds, free_port, own_cpu_seconds
from bench.stats import percentile
from bench.targets import API_KEY, HOST, SECRET, base_env
from bench.wsclient import Pool, Sink, open_pool

FANOUT_P99_MS = 20.0


@dataclass
class Fanout:
    """One fan-out run's figures; ``cpu_us`` is server CPU per published message."""

    p50: float
    p99: float
    delivered: float
    cpu_us: float
    text: str


@dataclass
class Row:
    name: str
    figures: str
    ceiling: str
    ok: bool


def token(user: str, **claims: Any) -> str:
    body = {"sub": user, "exp": int(time.time()) + 3600, "topics": ["bench.*"], **claims}
    return jwt.encode(body, SECRET, algorithm="HS256")


def send(pool: Pool, index: int, frame: dict[str, Any]) -> None:
    client = pool.clients[index]
    if client is not None and client.transport is not None:
        client.transport.write(wsframes.client_frame(orjson.dumps(frame)))


def messages_in(payload: bytes) -> list[dict[str, Any]]:
    frame = orjson.loads(payload)
    if frame.get("type") == "batch":
        return list(frame["messages"])
    return [frame] if frame.get("type") == "message" else []


async def wait_for(predicate: Any, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


def acks(sink: Sink) -> int:
    return sum(1 for _, _, p in sink.frames if p.startswith(b'{"type":"ack"'))


async def pool_of(port: int, n: int, prefix: str, **claims: Any) -> Pool:
    tokens = {f"u{i}": token(f"{prefix}{i}", **claims) for i in range(n)}
    return await open_pool(n, [(HOST, port)], lambda user: f"/ws?token={tokens[user]}", [HOST])


# -- 1. fan-out ---------------------------------------------------------------------------


async def fanout(port: int, server: Server, subscribers: int, rate: int, seconds: float) -> Fanout:
    pool = await pool_of(port, subscribers, "fan")
    for i in pool.open_indices:
        send(pool, i, {"type": "subscribe", "topic": "bench.fan", "batch": True, "ref": 1})
    await wait_for(lambda: acks(pool.sink) >= len(pool.open_indices), 30)
    pool.sink.reset()
    publisher = await pool_of(port, 1, "publisher", publish=["bench.*"])
    total = int(rate * seconds)
    # No collections in this process while it measures: full ones over the sink's
    # hundreds of thousands of frames would stall every receipt behind them.
    gc.collect()
    gc.freeze()
    gc.disable()
    cpu0, mine0 = cpu_seconds([server.pid]), own_cpu_seconds()
    started = time.perf_counter()
    for n in range(total):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0.001:
            await asyncio.sleep(delay)
        send(
            publisher,
            0,
            {"type": "publish", "topic": "bench.fan", "data": {"t": time.perf_counter(), "n": n}},
        )
    expected = total * len(pool.open_indices)
    await settled(pool.sink, 15)
    cpu, mine = cpu_seconds([server.pid]) - cpu0, own_cpu_seconds() - mine0
    gc.enable()
    gc.unfreeze()
    latencies: list[float] = []
    received = 0
    sample = set(pool.open_indices[::5])  # spread over the fan-out's order, not its head
    for now, idx, payload in pool.sink.frames:
        for message in messages_in(payload):
            received += 1
            if idx in sample:
                latencies.append((now - message["data"]["t"]) * 1000)
    pool.close()
    publisher.close()
    latencies.sort()
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    delivered = received / expected if expected else 0.0
    cpu_us = cpu / total * 1e6 if total else 0.0
    figures = (
        f"{len(pool.open_indices)} subs x {rate}/s x {seconds:g}s: p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms, max {latencies[-1] if latencies else 0:.0f} ms, delivered "
        f"{delivered:.2%}, frames {len(pool.sink.frames):,}, CPU server {cpu / seconds:.0%} "
        f"({cpu_us:.0f} us/msg) clients {mine / seconds:.0%}"
    )
    return Fanout(p50, p99, delivered, cpu_us, figures)


def fanout_row(found: Fanout, ceilings: dict[float, Fanout]) -> Row:
    """tidings' fan-out beside the best ceiling (lowest p99), with the ratios."""
    ok = found.p99 <= FANOUT_P99_MS and found.delivered >= 0.999
    if not ceilings:
        return Row("fan-out, history on", found.text, f"p99 <= {FANOUT_P99_MS:g} ms", ok)
    linger, best = min(ceilings.items(), key=lambda item: (item[1].delivered < 0.999, item[1].p99))
    figures = (
        f"{found.text}; raw ceiling (linger {linger:g} ms): p50 {best.p50:.1f} ms, "
        f"p99 {best.p99:.1f} ms, delivered {best.delivered:.2%}, {best.cpu_us:.0f} us/msg; "
        f"tidings/ceiling p50 x{_ratio(found.p50, best.p50)}, p99 x{_ratio(found.p99, best.p99)}, "
        f"CPU x{_ratio(found.cpu_us, best.cpu_us)}"
    )
    return Row("fan-out, history on", figures, f"p99 <= {FANOUT_P99_MS:g} ms", ok)


def _ratio(ours: float, ceiling: float) -> str:
    return f"{ours / ceiling:.1f}" if ceiling > 0 else "-"


async def ceiling(args: argparse.Namespace, workdir: Path) -> dict[float, Fanout]:
    """The fan-out against the raw peer, once per linger of ``--ceiling``."""
    found: dict[float, Fanout] = {}
    for linger in (float(x) for x in args.ceiling.split(",") if x.strip()):
        port = free_port()
        argv = [sys.executable, "-m", "bench.peers.raw", "--host", HOST, "--port", str(port),
                "--linger-ms", f"{linger:g}"]  # fmt: skip
        server = Server("raw", argv, base_env(), workdir / f"raw-{linger:g}.log", workdir)
        await server.start(HOST, port)
        try:
            found[linger] = await fanout(port, server, args.subscribers, args.rate, args.seconds)
        finally:
            await server.stop()
        print(f"{'  ceiling, linger ' + f'{linger:g} ms':<22} {'':<34} {found[linger].text}",
              flush=True)  # fmt: skip
    return found


async def settled(sink: Sink, within: float) -> None:
    """Wait until nothing more arrives for half a second (or ``within`` seconds)."""
    deadline = time.monotonic() + within
    last = -1
    while time.monotonic() < deadline and sink.count != last:
        last = sink.count
        await asyncio.sleep(0.5)


# -- 2. replay ----------------------------------------------------------------------------


async def replay(port: int, http: httpx.AsyncClient, clients: int) -> Row:
    for n in range(100):
        response = await http.post("/api/v1/topics/bench.replay/messages", json={"data": {"n": n}})
        response.raise_for_status()
    await asyncio.sleep(0.5)
    pool = await pool_of(port, clients, "replay")
    sent: dict[int, float] = {}
    for i in pool.open_indices:
        sent[i] = time.perf_counter()
        frame = {"type": "subscribe", "topic": "bench.replay", "history": 100, "batch": True}
        send(pool, i, {**frame, "ref": 1})
    started = time.perf_counter()
    await wait_for(lambda: acks(pool.sink) >= len(pool.open_indices), 60)
    wall = time.perf_counter() - started
    done: dict[int, float] = {}
    got: dict[int, int] = {}
    for now, idx, payload in pool.sink.frames:
        if payload.startswith(b'{"type":"ack"'):
            done[idx] = now
        else:
            got[idx] = got.get(idx, 0) + len(messages_in(payload))
    pool.close()
    waits = sorted((done[i] - sent[i]) * 1000 for i in done)
    complete = sum(1 for i in done if got.get(i) == 100)
    p50, p99 = percentile(waits, 50), percentile(waits, 99)
    figures = (
        f"{len(done)} reconnects x 100 msgs: subscribe->ack p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
        f"all done in {wall:.2f} s, complete {complete}/{len(pool.open_indices)}"
    )
    ok = complete == len(pool.open_indices)
    return Row("history replay", figures, "none given; all 100 each", ok)


# -- 3. presence churn --------------------------------------------------------------------


ROOMS = 50


async def churn(port: int, http: httpx.AsyncClient, clients: int, rate: int, seconds: float) -> Row:
    """Clients move in and out of ``ROOMS`` rooms (each client always the same room)."""
    room = "bench.room.0"
    watcher = await pool_of(port, 1, "watcher")
    send(watcher, 0, {"type": "subscribe", "topic": room, "presence": True, "ref": 0})
    await wait_for(lambda: acks(watcher.sink) >= 1, 10)
    watcher.sink.reset()
    pool = await pool_of(port, clients, "member")
    inside: set[int] = set()
    sent: dict[tuple[int, int], float] = {}
    rng = random.Random(7)
    ops = int(rate * seconds)
    started = time.perf_counter()
    indices = pool.open_indices
    for n in range(ops):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0.001:
            await asyncio.sleep(delay)
        i = rng.choice(indices)
        ref = n + 1
        topic = f"bench.room.{i % ROOMS}"
        if i in inside:
            inside.discard(i)
            send(pool, i, {"type": "unsubscribe", "topic": topic, "ref": ref})
        else:
            inside.add(i)
            send(pool, i, {"type": "subscribe", "topic": topic, "presence": True, "ref": ref})
        sent[(i, ref)] = time.perf_counter()
    elapsed = time.perf_counter() - started
    await wait_for(lambda: acks(pool.sink) >= ops, 30)
    await asyncio.sleep(0.5)
    waits = []
    for now, idx, payload in pool.sink.frames:
        if payload.startswith(b'{"type":"ack"'):
            ref = orjson.loads(payload)["ref"]
            if (idx, ref) in sent:
                waits.append((now - sent[(idx, ref)]) * 1000)
    waits.sort()
    refusals = [orjson.loads(p) for _, _, p in pool.sink.frames if p.startswith(b'{"type":"error"')]
    errors = {r["code"]: sum(1 for x in refusals if x["code"] == r["code"]) for r in refusals}
    changes = sum(
        1
        for _, _, p in watcher.sink.frames
        if p.startswith((b'{"type":"join"', b'{"type":"leave"'))
    )
    users = set((await http.get(f"/api/v1/topics/{room}/presence")).json()["users"])
    truth = {f"member{i}" for i in inside if i % ROOMS == 0} | {"watcher0"}
    pool.close()
    watcher.close()
    p99 = percentile(waits, 99)
    figures = (
        f"{ops} joins/leaves in {elapsed:.1f} s ({ops / elapsed:.0f}/s), "
        f"{len(indices)} clients, acked {len(waits)}/{ops}, errors {errors}: "
        f"ack p50 {percentile(waits, 50):.1f} ms, p99 {p99:.1f} ms; watcher saw {changes} "
        f"join/leave; final room {'matches' if users == truth else 'DIFFERS'} ({len(users)} users)"
    )
    ok = users == truth and len(waits) == ops
    return Row("presence churn", figures, "none given; all acked, room exact", ok)


# -- the run ------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> list[Row]:
    workdir = Path(tempfile.mkdtemp(prefix="tidings-bench-topics-"))
    port = free_port()
    env = base_env()
    env.update(
        {
            "TIDINGS_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/bench.db",
            "TIDINGS_BROKER_URL": args.broker,
            "TIDINGS_BROKER_PREFIX": f"tidings-bench-{os.getpid()}:",
            "TIDINGS_HOST": HOST,
            "TIDINGS_PORT": str(port),
            "TIDINGS_PUBLISH_RATE": "100000",
            "TIDINGS_PUBLISH_BURST": "100000",
            "TIDINGS_INBOUND_RATE": "100000",
            "TIDINGS_INBOUND_BURST": "100000",
        }
    )
    argv = [sys.executable, "-m", "tidings", "serve", "--host", HOST, "--port", str(port),
            "--log-level", "warning"]  # fmt: skip
    rows: list[Row] = []
    ceilings = await ceiling(args, workdir) if "fanout" in args.only else {}
    server = Server("tidings", argv, env, workdir / "server.log", workdir)
    await server.start(HOST, port)
    try:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(
            base_url=f"http://{HOST}:{port}", headers=headers, timeout=30
        ) as http:
            if "fanout" in args.only:
                found = await fanout(port, server, args.subscribers, args.rate, args.seconds)
                rows.append(fanout_row(found, ceilings))
                print(_line(rows[-1]), flush=True)
            if "replay" in args.only:
                rows.append(await replay(port, http, args.subscribers))
                print(_line(rows[-1]), flush=True)
            if "churn" in args.only:
                rows.append(await churn(port, http, args.subscribers, args.churn, args.seconds))
                print(_line(rows[-1]), flush=True)
    finally:
        await server.stop()
    return rows


def _line(row: Row) -> str:
    return f"{row.name:<22} {'PASS' if row.ok else 'FAIL':<5} {row.ceiling:<28} {row.figures}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=1000, help="fan-out messages per second")
    parser.add_argument("--churn", type=int, default=1000, help="presence operations per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--broker", default="memory://")
    parser.add_argument("--only", default="fanout,replay,churn")
    parser.add_argument(
        "--ceiling", default="0,2,5,10", help="raw peer lingers (ms) for the fan-out ceiling"
    )
    args = parser.parse_args()
    args.seconds = min(args.seconds, 60.0)
    args.subscribers = min(args.subscribers, 5000)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{'scenario':<22} {'':<5} {'ceiling':<28} figures  (broker {args.broker}; load {load})")
    with contextlib.suppress(KeyboardInterrupt):
        rows = uvloop.run(run(args))  # the clients cost less: more of the CPU for servers
        sys.exit(0 if all(r.ok for r in rows) else 1)


if __name__ == "__main__":
    main()
