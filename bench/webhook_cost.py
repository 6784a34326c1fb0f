"""What webhooks cost a create: ``python -m bench.webhook_cost [--creates N] [--rounds R]``.

Runs one ``tidings serve`` (SQLite, memory broker) at a time, alternately without and
with ``TIDINGS_WEBHOOK_URLS`` pointing at a receiver in its own process that answers
204, and fires ``--creates`` notifications from ``--concurrency`` keep-alive clients.
Reports, per mode, the median over rounds of creates per second and of the server's CPU
per create (user + system, from /proc, including the webhook sends), after waiting for
every webhook to be delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.procs import free_port

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key"
RECEIVER = """
import sys, uvicorn
count = 0
async def app(scope, receive, send):
    global count
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["method"] == "POST":
        count += 1
        body = b""
    else:
        body = str(count).encode()
    await send({"type": "http.response.start", "status": 200 if body else 204,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def spawn(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_port(port: int, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def fire(base: str, count: int, concurrency: int) -> float:
    """Create ``count`` notifications; return the seconds it took."""
    body = {"to": {"users": ["bench"]}, "type": "bench", "title": "webhook cost"}
    headers = {"Authorization": f"Bearer {KEY}"}
    left = iter(range(count))

    async def worker(client: httpx.AsyncClient) -> None:
        for _ in left:
            response = await client.post("/api/v1/notifications", json=body, headers=headers)
            response.raise_for_status()

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return time.perf_counter() - started


async def one_round(
    webhooks: bool, receiver: str | None, args: argparse.Namespace
) -> tuple[float, float]:
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="tidings-whcost-"))
    env = {
        **os.environ,
        "TIDINGS_PORT": str(port),
        "TIDINGS_API_KEYS": KEY,
        "TIDINGS_JWT_SECRET": "bench-secret-0123456789abcdef0123456789",
        "TIDINGS_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/tidings.db",
        "TIDINGS_SECRETS_FILE": str(workdir / "secrets.json"),
        "TIDINGS_CONFIG": str(workdir / "absent.toml"),
        "PYTHONPATH": str(ROOT / "src"),
    }
    if webhooks:
        env |= {"TIDINGS_WEBHOOK_URLS": receiver or "", "TIDINGS_WEBHOOK_SECRET": "bench"}
    server = spawn(
        [sys.executable, "-m", "tidings", "serve", "--log-level", "warning"], env, workdir
    )
    try:
        await wait_port(port)
        base = f"http://127.0.0.1:{port}"
        await fire(base, args.warmup, args.concurrency)
        before = cpu_seconds(server.pid)
        seconds = await fire(base, args.creates, args.concurrency)
        if webhooks:  # the sends are part of the cost: wait for all of them
            await drained(receiver or "", args.warmup + args.creates)
        cpu = cpu_seconds(server.pid) - before
        return args.creates / seconds, cpu / args.creates * 1e6
    finally:
        server.terminate()
        server.wait(20)


async def drained(receiver: str, expected: int, within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while int((await client.get(receiver)).text) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError("webhooks not all delivered")
            await asyncio.sleep(0.05)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for _ in range(args.rounds):
        for webhooks in (False, True):
            rport = free_port()
            receiver = spawn([sys.executable, "-c", RECEIVER, str(rport)], dict(os.environ), ROOT)
            try:
                await wait_port(rport)
                url = f"http://127.0.0.1:{rport}/hook"
                results[webhooks].append(await one_round(webhooks, url, args))
            finally:
                receiver.terminate()
                receiver.wait(10)
            rate, cpu = results[webhooks][-1]
            print(f"webhooks {'on ' if webhooks else 'off'}: {rate:7.0f} creates/s, "
                  f"{cpu:6.0f} us server CPU per create", flush=True)  # fmt: skip
    for webhooks in (False, True):
        rates = [r for r, _ in results[webhooks]]
        cpus = [c for _, c in results[webhooks]]
        print(f"median, webhooks {'on ' if webhooks else 'off'}: "
              f"{statistics.median(rates):.0f} creates/s, "
              f"{statistics.median(cpus):.0f} us CPU/create")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
