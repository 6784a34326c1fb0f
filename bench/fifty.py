"""50,000 WebSocket connections on this machine: ``python -m bench.fifty``.

One ``tidings serve --workers W`` on one port (one SQLite file, a private Redis), heartbeats
on, and G load-generator processes (the per-process open-file limit is 20,000) holding
``--connections`` WebSockets between them from source addresses 127.0.0.2-9. Then:

1. targeted: ``--rate`` notifications/s for ``--seconds`` to random connected users;
   latency (receipt minus scheduled send time, clocks shared: CLOCK_MONOTONIC), lost;
2. broadcast: one notification to everyone; time until the last client has it.

Prints the total server memory (process tree, the private Redis included), PASS/FAIL for
each target (all connected, p99 <= 50 ms and none lost, broadcast reached everyone) and
writes ``bench/results/fifty.json``. Loopback only; bounded by ``--budget`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from bench.procs import cpu_seconds, rss_bytes
from bench.stats import curve, summary

HERE = Path(__file__).resolve().parent
SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]
P99_MS = 50.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.fifty", description=__doc__.split("\n")[0])
    p.add_argument("--connections", type=int, default=50_000)
    p.add_argument(
        "--workers",
        type=int,
        default=3,
        help="tidings serve --workers (3: about 17,000 sockets each under the 20,000 limit)",
    )
    p.add_argument("--generators", type=int, default=4, help="load-generator processes")
    p.add_argument("--rate", type=float, default=1_000.0, help="targeted notifications/s")
    p.add_argument("--seconds", type=float, default=10.0, help="targeted duration")
    p.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="one SQLite file, or a fresh PostgreSQL database (127.0.0.1:5432)",
    )
    p.add_argument("--heartbeat", type=float, default=20.0, help="TIDINGS_HEARTBEAT")
    p.add_argument("--budget", type=float, default=1500.0, help="overall seconds")
    p.add_argument("--out", type=Path, default=HERE / "results" / "fifty.json")
    p.add_argument("--tidings-rev", metavar="REV", help="run tidings from git revision REV")
    p.add_argument("--generator", type=int, help=argparse.SUPPRESS)  # internal: generator id
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# -- a load-generator process ---------------------------------------------------------------


async def generator(args: argparse.Namespace) -> None:
    """Hold ``count`` connections as users g<id>u<i>; report what they received on demand."""
    from bench.scenarios import tokens_for
    from bench.wsclient import open_pool

    prefix = f"g{args.generator}u"
    tokens = tokens_for([f"{prefix}{i}" for i in range(args.count)])
    sources = SOURCES[args.generator % len(SOURCES) :] + SOURCES[: args.generator % len(SOURCES)]
    pool = await open_pool(
        args.count,
        [("127.0.0.1", args.port)],
        lambda u: f"/ws?token={tokens[u]}",
        sources,
        concurrency=40,
        deadline=time.perf_counter() + args.budget,
        prefix=prefix,
    )
    _say({"ready": pool.open_indices, "errors": pool.errors, "seconds": pool.seconds})
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).strip():
        if line == b"report":
            hits: dict[str, list[list[float]]] = {"t": [], "b": []}
            for t, idx, payload in pool.sink.frames:
                with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
                    data = orjson.loads(payload)["notification"]["data"]
                    hits[data["k"]].append([data.get("seq", 0), t, idx])
            _say({"hits": hits, "closed": pool.sink.closed})
        elif line == b"exit":
            break
    pool.close()


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# -- the coordinator ------------------------------------------------------------------------


class Generator:
    def __init__(self, gid: int, count: int, port: int, budget: float) -> None:
        self.gid, self.count, self.port, self.budget = gid, count, port, budget
        self.proc: asyncio.subprocess.Process | None = None
        self.open: list[int] = []

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.fifty",
            "--generator",
            str(self.gid),
            "--port",
            str(self.port),
            "--count",
            str(self.count),
            "--budget",
            str(self.budget),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 28,
            cwd=HERE.parent,
        )

    async def read(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"generator {self.gid} ended")
        return json.loads(line)

    async def tell(self, command: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()

    def users(self) -> list[str]:
        return [f"g{self.gid}u{i}" for i in self.open]

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(Exception):
            await self.tell("exit")
            await asyncio.wait_for(self.proc.wait(), 20)
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def coordinate(args: argparse.Namespace) -> int:
    from bench.httpclient import HTTPPool
    from bench.scenarios import CREATE_PATH, HEADERS, note_body
    from bench.targets import TidingsTarget

    started = time.time()
    end = time.perf_counter() + args.budget
    if args.tidings_rev:
        from bench.targets import use_tidings_revision

        args.tidings_rev = use_tidings_revision(args.tidings_rev)
    workdir = HERE / "results" / "tmp" / "fifty"
    workdir.mkdir(parents=True, exist_ok=True)
    store = "SQLite" if args.database == "sqlite" else "PostgreSQL"
    label = f"tidings serve --workers {args.workers}, {store} + Redis"
    target = TidingsTarget(
        "tidings-50k",
        label,
        workdir,
        scaled=True,
        processes=1,
        workers=args.workers,
        sqlite=args.database == "sqlite",
        extra_env={"TIDINGS_HEARTBEAT": str(args.heartbeat)},
    )
    per = -(-args.connections // args.generators)
    result: dict[str, Any] = {
        "config": {
            k: v for k, v in vars(args).items() if k not in ("out", "generator", "port", "count")
        }
    }
    gens: list[Generator] = []
    log = _logger()
    try:
        await target.start()
        port = target.endpoints[0][1]
        log(f"tidings serve --workers {args.workers} on port {port}")
        cpu0 = cpu_seconds(target.pids())
        t0 = time.perf_counter()
        left = end - time.perf_counter()
        connecting = max(left - 120, left / 2)  # the rest: targeted, broadcast, reports
        gens = [
            Generator(g, min(per, args.connections - g * per), port, connecting)
            for g in range(args.generators)
        ]
        for gen in gens:
            await gen.start()
        errors: Counter[str] = Counter()
        for gen in gens:
            ready = await asyncio.wait_for(gen.read(), max(end - time.perf_counter(), 1))
            gen.open = ready["ready"]
            errors.update(ready["errors"])
        n_open = sum(len(g.open) for g in gens)
        seconds = time.perf_counter() - t0
        connect_cpu = (cpu_seconds(target.pids()) - cpu0) * 1e6 / max(n_open, 1)
        await asyncio.sleep(3)
        memory = rss_bytes(target.pids())
        result["connect"] = {
            "open": n_open,
            "seconds": seconds,
            "errors": dict(errors),
            "cpu_us": connect_cpu,
            "server_rss": memory,
            "server_processes": len(_tree(target.pids())),
        }
        log(
            f"{n_open:,}/{args.connections:,} open in {seconds:.0f}s ({connect_cpu:,.0f} us "
            f"server CPU each); total server memory {memory / 2**20:,.0f} MiB "
            f"({memory / max(n_open, 1) / 1024:.1f} KiB/conn incl. process baselines)"
            + (f"; failures {dict(errors)}" if errors else "")
        )
        users = [u for g in gens for u in g.users()]
        http = HTTPPool(target.endpoints, 64)
        await http.start()
        try:
            result["targeted"] = await _targeted(
                http, users, args, log, note_body, CREATE_PATH, HEADERS
            )
            await asyncio.sleep(2)
            b_ts = time.perf_counter()
            status, _ = await http.request(
                "POST", CREATE_PATH, note_body({"all": True}, {"k": "b"}), HEADERS
            )
            result["broadcast_status"] = status
            await asyncio.sleep(min(30.0, max(end - time.perf_counter() - 30, 1)))
        finally:
            http.close()
        hits_t: list[list[float]] = []
        hits_b: list[list[float]] = []
        closed = 0
        for gen in gens:
            await gen.tell("report")
            report = await gen.read()
            hits_t += report["hits"]["t"]
            hits_b += report["hits"]["b"]
            closed += report["closed"]
        result["connections_closed"] = closed
        _score(result, hits_t, hits_b, b_ts, n_open)
        result["server_rss_end"] = rss_bytes(target.pids())
    finally:
        for gen in gens:
            await gen.stop()
        await target.stop()
    checks = [
        (
            f"{args.connections:,} WebSocket connections open",
            result.get("connect", {}).get("open", 0) >= args.connections,
            f"{result.get('connect', {}).get('open', 0):,} open",
        ),
    ]
    t = result.get("targeted", {})
    if "latency_ms" in t:
        lat = t["latency_ms"]
        checks.append(
            (
                f"{args.rate:,.0f} targeted/s, p99 <= {P99_MS:g} ms, none lost",
                t["achieved_rate"] >= 0.95 * args.rate
                and lat["p99"] <= P99_MS
                and t["lost"] == 0
                and t["duplicated"] == 0,
                f"achieved {t['achieved_rate']:,.0f}/s, p50 {lat['p50']:.1f} ms, "
                f"p99 {lat['p99']:.1f} ms, lost {t['lost']}, dup {t['duplicated']}",
            )
        )
    b = result.get("broadcast", {})
    if b:
        checks.append(
            (
                "broadcast reaches every connection",
                b["delivered"] >= b["connections"],
                f"{b['delivered']:,}/{b['connections']:,} in {b['last_ms']:,.0f} ms",
            )
        )
    memory = result.get("connect", {}).get("server_rss")
    if memory:
        print(
            f"total server memory at {result['connect']['open']:,} connections: "
            f"{memory / 2**20:,.0f} MiB",
            flush=True,
        )
    word = {True: "PASS", False: "FAIL"}
    for desc, ok, detail in checks:
        print(f"{word[bool(ok)]}  [50k] {desc}: {detail}", flush=True)
    result["checks"] = [{"check": d, "passed": bool(ok), "detail": det} for d, ok, det in checks]
    result["started"] = started
    result["seconds"] = round(time.time() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    print(f"results: {args.out}")
    return 0 if all(ok for _, ok, _ in checks) else 1


async def _targeted(
    http: Any,
    users: list[str],
    args: argparse.Namespace,
    log: Any,
    note_body: Any,
    path: str,
    headers: dict[str, str],
) -> dict[str, Any]:
    rng = random.Random(7)
    total = int(args.rate * args.seconds)
    accepted: dict[int, tuple[str, float]] = {}
    errors: Counter[str] = Counter()
    tasks: set[asyncio.Task[None]] = set()
    post_ms: list[float] = []

    async def publish(seq: int, user: str, ts: float) -> None:
        body = note_body({"users": [user]}, {"ts": ts, "seq": seq, "k": "t"})
        try:
            status, _ = await http.request("POST", path, body, headers)
        except Exception as exc:
            errors[type(exc).__name__] += 1
            return
        post_ms.append((time.perf_counter() - ts) * 1000)
        if status == 201:
            accepted[seq] = (user, ts)
        else:
            errors[f"HTTP {status}"] += 1

    t0 = time.perf_counter() + 0.05
    for seq in range(total):
        when = t0 + seq / args.rate
        delay = when - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        task = asyncio.create_task(publish(seq, rng.choice(users), min(when, time.perf_counter())))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(set(tasks), timeout=20)
    send_seconds = max(time.perf_counter() - t0, args.seconds)
    await asyncio.sleep(5)  # drain
    log(f"targeted: {len(accepted):,}/{total:,} accepted" + (f"; {dict(errors)}" if errors else ""))
    return {
        "published": total,
        "accepted_map": accepted,
        "errors": dict(errors),
        "achieved_rate": len(accepted) / send_seconds,
        "post_ms": summary(post_ms),
    }


def _score(
    result: dict[str, Any],
    hits_t: list[list[float]],
    hits_b: list[list[float]],
    b_ts: float,
    n_open: int,
) -> None:
    t = result["targeted"]
    accepted: dict[int, tuple[str, float]] = t.pop("accepted_map")
    seen: Counter[int] = Counter()
    latencies: list[float] = []
    by_second: dict[int, list[float]] = {}
    first = min((sent for _, sent in accepted.values()), default=0.0)
    for seq, when, _ in hits_t:
        seq = int(seq)
        seen[seq] += 1
        if seen[seq] == 1 and seq in accepted:
            latency = (when - accepted[seq][1]) * 1000
            latencies.append(latency)
            by_second.setdefault(int(accepted[seq][1] - first), []).append(latency)
    t.update(
        {
            "accepted": len(accepted),
            "delivered": len(seen),
            "lost": len(accepted.keys() - seen.keys()),
            "duplicated": sum(c - 1 for c in seen.values()),
            "latency_ms": summary(latencies),
            "latency_curve": curve(latencies),
            "p99_by_second": [round(summary(by_second[k])["p99"], 1) for k in sorted(by_second)],
        }
    )
    last = max((when for _, when, _ in hits_b), default=b_ts)
    result["broadcast"] = {
        "connections": n_open,
        "delivered": len(hits_b),
        "last_ms": (last - b_ts) * 1000,
    }
    lat = t["latency_ms"]
    print(
        f"targeted: {t['delivered']:,}/{t['accepted']:,} delivered, lost {t['lost']}, "
        f"p50 {lat['p50']:.1f} p99 {lat['p99']:.1f} max {lat['max']:.1f} ms; broadcast "
        f"{len(hits_b):,}/{n_open:,} in {result['broadcast']['last_ms']:,.0f} ms; p99 by second "
        f"{t['p99_by_second']}; the POST's own answer p50 {t['post_ms']['p50']:.1f} "
        f"p99 {t['post_ms']['p99']:.1f} ms",
        flush=True,
    )


def _tree(pids: list[int]) -> list[int]:
    from bench.procs import tree

    return list(tree(pids))


def _logger() -> Any:
    t0 = time.perf_counter()

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {text}", flush=True)

    return log


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import uvloop

    if args.generator is not None:
        uvloop.run(generator(args))
        return 0
    return uvloop.run(coordinate(args))


if __name__ == "__main__":
    sys.exit(main())
