"""One noisy user against everyone else: server memory and other users' delivery latency.

    .venv/bin/python -m bench.noisy pings   # one client floods pings, never reads
    .venv/bin/python -m bench.noisy lists   # 20 connections of one user flood `list`

Starts ``tidings serve`` (SQLite, memory broker) on a free port, connects ``--victims``
WebSocket clients as distinct users, and sends them notifications at ``--rate`` per
second whose ``data.ts`` is the send time. A quiet phase, then the same with the noisy
user, each ``--seconds`` long. Prints, per phase, the victims' delivery latency
(p50/p99/max) and the server's peak RSS; ``--rev`` names the code under test in the
output only. Loopback only; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import websockets
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

from bench.procs import Server, free_port, rss_bytes
from bench.stats import summary

SECRET = "noisy-bench-secret-long-enough-for-hs256"
KEY = "noisy-key"
ROOT = Path(__file__).resolve().parent.parent


def token(user: str) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")


class Phase:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.peak_rss = 0
        self.sent = 0
        self.failed = 0


async def victim(url: str, user: str, phases: dict[str, Phase]) -> None:
    async with websockets.connect(f"{url}?token={token(user)}", max_size=None) as ws:
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame["type"] == "ping":
                await ws.send('{"type":"pong"}')
            elif frame["type"] == "notification":
                data = frame["notification"]["data"]
                phases[data["phase"]].latencies.append(time.time() - data["ts"])


async def publish(http: httpx.AsyncClient, users: list[str], rate: float, phase: Phase,
                  name: str, seconds: float) -> None:  # fmt: skip
    start = time.monotonic()
    n = 0
    pending: set[asyncio.Task[Any]] = set()
    while (due := start + n / rate) < start + seconds:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        body = {"to": {"users": [random.choice(users)]}, "title": "t",
                "data": {"ts": time.time(), "phase": name}}  # fmt: skip
        task = asyncio.create_task(_post(http, body, phase))
        pending.add(task)
        task.add_done_callback(pending.discard)
        n += 1
    await asyncio.gather(*pending, return_exceptions=True)
    phase.sent = n


async def _post(http: httpx.AsyncClient, body: dict[str, Any], phase: Phase) -> None:
    try:
        (await http.post("/api/v1/notifications", json=body)).raise_for_status()
    except httpx.HTTPError:
        phase.failed += 1


async def sample_rss(pid: int, phase: Phase, stop: asyncio.Event) -> None:
    while not stop.is_set():
        phase.peak_rss = max(phase.peak_rss, rss_bytes([pid]))
        await asyncio.sleep(0.2)


async def ping_flood(port: int, url: str, stop: asyncio.Event, report: dict[str, Any]) -> None:
    """A client that sends pings as fast as the server takes them and never reads."""
    protocol = ClientProtocol(parse_uri(url), state=State.OPEN)
    for _ in range(2000):
        protocol.send_ping(b"p" * 125)
    burst = b"".join(protocol.data_to_send())
    handshake = ClientProtocol(parse_uri(f"{url}?token={token('noisy')}"))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.transport.set_write_buffer_limits(high=1 << 20)
    handshake.send_request(handshake.connect())
    for chunk in handshake.data_to_send():
        writer.write(chunk)
    handshake.receive_data(await reader.read(4096))
    writer.transport.pause_reading()  # never read again
    sent = 0
    try:
        while not stop.is_set():
            writer.write(burst)
            sent += len(burst)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(writer.drain(), 1.0)
    except OSError as exc:
        report["flooder"] = f"cut off after {sent >> 20} MiB of pings ({exc.__class__.__name__})"
    else:
        report["flooder"] = f"sent {sent >> 20} MiB of pings, still connected"
    writer.transport.abort()


async def list_flood(url: str, stop: asyncio.Event, report: dict[str, Any]) -> None:
    """20 connections of one user, each sending `list` (limit 100) 19 times a second."""
    counts = {"list": 0, "error": 0, "closed": 0}

    async def one() -> None:
        try:
            async with websockets.connect(f"{url}?token={token('noisy')}", max_size=None) as ws:

                async def read() -> None:
                    async for raw in ws:
                        kind = orjson.loads(raw)["type"]
                        if kind in counts:
                            counts[kind] += 1

                reader = asyncio.create_task(read())
                while not stop.is_set():
                    await ws.send('{"type":"list","limit":100}')
                    await asyncio.sleep(1 / 19)
                reader.cancel()
        except websockets.ConnectionClosed:
            counts["closed"] += 1

    await asyncio.gather(*(one() for _ in range(20)))
    report["lists"] = counts


async def attacker(scenario: str, port: int, seconds: float, report: dict[str, Any]) -> None:
    """The noisy user, in a process of its own: its CPU is not the victims' clients'."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.noisy", scenario, "--attack", str(port),
        "--seconds", str(seconds), stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    report.update(orjson.loads(out))


async def attack_alone(scenario: str, port: int, seconds: float) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{port}/ws"
    report: dict[str, Any] = {}
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    if scenario == "pings":
        await ping_flood(port, url, stop, report)
    else:
        await list_flood(url, stop, report)
    return report


async def seed_noisy_inbox(http: httpx.AsyncClient, count: int) -> None:
    body = {"to": {"users": ["noisy"]}, "title": "old", "body": "x" * 200}
    for start in range(0, count, 50):
        await asyncio.gather(
            *(http.post("/api/v1/notifications", json=body) for _ in range(start, start + 50))
        )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="tidings-noisy-"))
    env = {
        **os.environ,
        "TIDINGS_HOST": "127.0.0.1",
        "TIDINGS_PORT": str(port),
        "TIDINGS_JWT_SECRET": SECRET,
        "TIDINGS_API_KEYS": KEY,
        "TIDINGS_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/tidings.db",
        "TIDINGS_SECRETS_FILE": str(workdir / "secrets.json"),
        "TIDINGS_CONFIG": str(workdir / "absent.toml"),
        "PYTHONPATH": str(ROOT / "src"),
    }
    argv = [sys.executable, "-m", "tidings", "serve", "--log-level", "warning"]
    server = Server("tidings", argv, env, workdir / "server.log", workdir)
    await server.start("127.0.0.1", port)
    url = f"ws://127.0.0.1:{port}/ws"
    headers = {"Authorization": f"Bearer {KEY}"}
    report: dict[str, Any] = {"scenario": args.scenario, "rev": args.rev}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30
        ) as http:
            if args.scenario == "lists":
                await seed_noisy_inbox(http, 1000)
            users = [f"v{n}" for n in range(args.victims)]
            phases = {"quiet": Phase(), "noisy": Phase()}
            victims = [asyncio.create_task(victim(url, u, phases)) for u in users]
            await asyncio.sleep(1.0)
            for name in ("quiet", "noisy"):
                stop = asyncio.Event()
                extra = [asyncio.create_task(sample_rss(server.pid, phases[name], stop))]
                if name == "noisy":
                    attack = attacker(args.scenario, port, args.seconds + 2.0, report)
                    extra.append(asyncio.create_task(attack))
                await publish(http, users, args.rate, phases[name], name, args.seconds)
                await asyncio.sleep(2.0)  # stragglers
                stop.set()
                await asyncio.gather(*extra)
            for task in victims:
                task.cancel()
            for name, phase in phases.items():
                lat = summary([v * 1000 for v in phase.latencies])
                report[name] = {
                    "sent": phase.sent,
                    "failed": phase.failed,
                    "received": lat["count"],
                    "p50_ms": round(lat["p50"], 1),
                    "p99_ms": round(lat["p99"], 1),
                    "max_ms": round(lat["max"], 1),
                    "peak_rss_mib": round(phase.peak_rss / 2**20, 1),
                }
    finally:
        await server.stop()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["pings", "lists"])
    parser.add_argument("--victims", type=int, default=50)
    parser.add_argument("--rate", type=float, default=50.0, help="notifications per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--rev", default="working tree")
    parser.add_argument("--attack", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        if args.attack:
            report = asyncio.run(attack_alone(args.scenario, args.attack, args.seconds))
        else:
            report = asyncio.run(run(args))
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
