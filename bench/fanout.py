"""The fan-out's own cost, in one process: ``python -m bench.fanout [--instructions]``.

A broadcast's deliveries/s against the raw ceiling (``python -m bench``) moves by ±10 %
from run to run on a shared 2-core host, more than most changes to the hub's path. This
measures that path alone, over the same sockets as a bare loop of ``transport.write``
(the ceiling's fan-out), so the two are compared in the same process and minute:

- timed (default): ``--connections`` loopback TCP sockets on uvloop; each round writes
  one frame to all of them, first as the ceiling does, then through ``Hub._deliver`` →
  ``Connection.offer`` → the direct WebSocket writer (alternating which goes first),
  with 48 MiB touched in between so that every round starts on cold caches as a real
  broadcast does. Prints CPU µs per delivery, medians over ``--rounds``.
- ``--instructions``: the same rounds under valgrind's callgrind, instrumented only
  while they run; prints instructions, and level-1 data cache misses, per delivery.
  The kernel's share (the loopback write itself) is not counted, so this isolates what
  the Python path adds, deterministically (needs ``valgrind``).

The receiving ends are never read; a round's frames fit in the sockets' buffers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import uvloop

from tidings.broker.memory import MemoryBroker
from tidings.connection import Connection, Tally
from tidings.hub import Hub, _Fanout
from tidings.models import Principal
from tidings.web.wsdirect import text_frame
from tidings.web.wsserver import DirectWebSocketProtocol

PAYLOAD = (
    b'{"type":"notification","notification":{"id":"0000000000000001","type":"bench",'
    b'"level":"info","title":"t","body":"","data":{"ts":1234567.123456,"seq":1,"k":"b1"},'
    b'"url":null,"actor":null,"created_at":"2026-11-22T10:00:00Z","read_at":null}}'
)
"""A broadcast's notification frame as ``python -m bench`` sends it (285 bytes framed)."""
CACHE_SWEEP = bytearray(48 * 2**20)
PATHS = ("ceiling", "hub")


class Sockets:
    """``n`` accepted loopback connections on uvloop transports, and their clients."""

    def __init__(self) -> None:
        self.transports: list[asyncio.Transport] = []
        self.clients: list[socket.socket] = []

    async def open(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1024)
            for _ in range(n):
                client = socket.socket()
                client.connect(listener.getsockname())
                accepted, _ = listener.accept()
                transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, accepted)
                transport.set_write_buffer_limits(high=1 << 20)
                self.transports.append(transport)
                self.clients.append(client)

    def drain(self) -> list[bytes]:
        """What each client has received since the last drain."""
        received = []
        for client in self.clients:
            client.setblocking(False)
            chunks = []
            try:
                while chunk := client.recv(1 << 16):
                    chunks.append(chunk)
            except BlockingIOError:
                pass
            received.append(b"".join(chunks))
        return received


def direct_connections(transports: list[asyncio.Transport]) -> list[Connection]:
    """Hub connections writing through :class:`DirectWebSocketProtocol` to ``transports``:
    open, past the handshake, as the hub sees them during a broadcast."""
    shared = SimpleNamespace(settings=SimpleNamespace(outbox_bytes=1 << 20))
    tally = Tally()
    conns = []
    for i, transport in enumerate(transports):
        protocol = DirectWebSocketProtocol.__new__(DirectWebSocketProtocol)
        protocol.transport = transport
        protocol._shared = shared
        protocol._closing_since = None
        protocol._over = protocol._greeting = protocol._lost = False
        conn = Connection(Principal(user=f"u{i}"), outbox_size=1000, tally=tally)
        conn.write_directly(protocol._write)
        conns.append(conn)
    return conns


class Fanouts:
    """One round of each path; every round a new payload object, as every broadcast."""

    def __init__(self, transports: list[asyncio.Transport]) -> None:
        self.transports = transports
        self.conns = direct_connections(transports)
        self.hub = Hub(broker=MemoryBroker(), outbox_size=1000)
        self.round = 0
        self.last_payload = PAYLOAD

    def run(self, path: str) -> None:
        self.round += 1
        payload = PAYLOAD + b" " * (self.round % 7)  # a new object, equal in size
        self.last_payload = payload
        if path == "ceiling":
            frame = text_frame(payload)
            for transport in self.transports:
                transport.write(frame)
        else:
            job = _Fanout(f"{self.round:016x}", payload, self.conns, None)
            self.hub._deliver(job, self.conns)


def sweep_caches(seed: int) -> None:
    for i in range(0, len(CACHE_SWEEP), 64):
        CACHE_SWEEP[i] = seed & 0xFF


async def timed(connections: int, rounds: int) -> dict[str, list[float]]:
    sockets = Sockets()
    await sockets.open(connections)
    fanouts = Fanouts(sockets.transports)
    spent: dict[str, list[float]] = {path: [] for path in PATHS}
    gc.collect()
    gc.disable()
    for r in range(rounds):
        for path in PATHS if r % 2 else PATHS[::-1]:
            sockets.drain()
            sweep_caches(r)
            await asyncio.sleep(0.005)
            start = time.process_time()
            fanouts.run(path)
            spent[path].append((time.process_time() - start) * 1e6 / connections)
    gc.enable()
    return spent


async def instrumented(connections: int, rounds: int, path: str) -> None:
    """The rounds of one path, for callgrind: they start once a line arrives on stdin
    (instrumentation is on by then), and the process exits right after them."""
    sockets = Sockets()
    await sockets.open(connections)
    fanouts = Fanouts(sockets.transports)
    gc.collect()
    gc.disable()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    for _ in range(rounds):
        fanouts.run(path)
    os._exit(0)


def count_instructions(connections: int, rounds: int) -> dict[str, dict[str, float]]:
    """Run each path under callgrind; per delivery: instructions, D1 misses."""
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        sys.exit("--instructions needs valgrind (apt-get install valgrind)")
    found: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
        for path in PATHS:
            out = Path(tmp) / f"callgrind-{path}.out"
            argv = [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                "--cache-sim=yes",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "bench.fanout",
                "--connections",
                str(connections),
                "--rounds",
                str(rounds),
                "--instrumented",
                path,
            ]
            env = {**os.environ, "PYTHONHASHSEED": "0"}
            log = (Path(tmp) / f"valgrind-{path}.log").open("w")
            with (
                log,
                subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    env=env,
                ) as proc,
            ):
                assert proc.stdin is not None and proc.stdout is not None
                while proc.stdout.readline().strip() != "ready":
                    if proc.poll() is not None:
                        log.flush()
                        tail = Path(log.name).read_text()[-2000:]
                        sys.exit(f"{path}: the instrumented run failed:\n{tail}")
                subprocess.run(
                    ["callgrind_control", "-i", "on", str(proc.pid)],
                    check=True,
                    capture_output=True,
                )
                proc.stdin.write("go\n")
                proc.stdin.flush()
                proc.wait()
            found[path] = per_delivery(out, connections * rounds)
    return found


def per_delivery(out: Path, deliveries: int) -> dict[str, float]:
    events: list[str] = []
    totals: list[int] = []
    for line in out.read_text().splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("summary:"):
            totals = [int(v) for v in line.split()[1:]]
    got = dict(zip(events, totals, strict=True))
    return {
        "instructions": got["Ir"] / deliveries,
        "d1_misses": (got["D1mr"] + got["D1mw"]) / deliveries,
    }


def report_timed(spent: dict[str, list[float]]) -> None:
    ceiling = statistics.median(spent["ceiling"])
    print(f"{'path':<10}{'CPU µs/delivery':>17}{'over ceiling':>14}{'share':>8}")
    for path in PATHS:
        value = statistics.median(spent[path])
        print(f"{path:<10}{value:>17.2f}{value - ceiling:>+14.2f}{ceiling / value:>8.0%}")


def report_instructions(found: dict[str, dict[str, float]]) -> None:
    ceiling = found["ceiling"]["instructions"]
    print(f"{'path':<10}{'instructions/delivery':>23}{'over ceiling':>14}{'D1 misses':>11}")
    for path in PATHS:
        got = found[path]
        print(
            f"{path:<10}{got['instructions']:>23,.0f}{got['instructions'] - ceiling:>+14,.0f}"
            f"{got['d1_misses']:>11.1f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__)
    parser.add_argument("--connections", type=int, default=4000)
    parser.add_argument("--rounds", type=int, help="default 60 timed, 6 instrumented")
    parser.add_argument("--instructions", action="store_true", help="count under callgrind")
    parser.add_argument("--instrumented", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.instrumented:
        uvloop.run(instrumented(args.connections, args.rounds, args.instrumented))
    elif args.instructions:
        rounds = args.rounds or 6
        print(
            f"bench.fanout: {args.connections:,} connections, {rounds} rounds per path, callgrind"
        )
        report_instructions(count_instructions(args.connections, rounds))
    else:
        rounds = args.rounds or 60
        print(f"bench.fanout: {args.connections:,} connections, {rounds} rounds per path, timed")
        report_timed(uvloop.run(timed(args.connections, rounds)))


if __name__ == "__main__":
    main()
