"""The four scenarios: create, idle (connect), targeted, broadcast."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import jwt
import orjson

from bench.httpclient import HTTPPool
from bench.procs import cpu_seconds, own_cpu_seconds, rss_bytes
from bench.stats import curve, median, summary
from bench.targets import API_KEY, SECRET, Target
from bench.wsclient import Pool, Sink, open_pool

CREATE_PATH = "/api/v1/notifications"
HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
Log = Callable[[str], None]


@dataclass
class Config:
    """Sizes and time bounds of one run."""

    connections: int = 10_000
    targeted_rate: float = 1_000.0
    targeted_seconds: float = 10.0
    targeted_repeats: int = 3
    broadcast_repeats: int = 5
    broadcast_timeout: float = 20.0
    broadcast_budget: float = 25.0
    create_seconds: float = 3.0
    create_repeats: int = 3
    create_concurrency: int = 64
    publish_concurrency: int = 64
    max_inflight: int = 2_000
    drain_timeout: float = 5.0
    connect_concurrency: int = 100
    connect_timeout: float = 120.0
    settle: float = 2.0
    sse_connections: int = 2_000
    sse_rate: float = 200.0
    sse_seconds: float = 5.0
    sources: list[str] = field(default_factory=lambda: [f"127.0.0.{i}" for i in range(2, 10)])


def note_body(to: dict[str, Any], data: dict[str, Any]) -> bytes:
    return orjson.dumps({"to": to, "type": "bench", "title": "t", "body": "", "data": data})


class Collector:
    """Parses new frames from a sink, keeping notifications whose ``data.k`` is ``tag``."""

    def __init__(self, sink: Sink, tag: str) -> None:
        self.sink, self.tag, self.pos = sink, tag, 0
        self.hits: list[tuple[float, int, dict[str, Any]]] = []
        self.other = Counter[str]()

    def collect(self) -> None:
        frames = self.sink.frames
        for t, ci, payload in frames[self.pos :]:
            try:
                msg = orjson.loads(payload)
            except orjson.JSONDecodeError:
                self.other["bad json"] += 1
                continue
            kind = msg.get("type")
            if kind != "notification":
                self.other[str(kind)] += 1
                continue
            data = (msg.get("notification") or {}).get("data") or {}
            if data.get("k") == self.tag:
                self.hits.append((t, ci, data))
            else:
                self.other["stray notification"] += 1
        self.pos = len(frames)


async def _create_run(http: HTTPPool, bodies: list[bytes], cfg: Config) -> dict[str, Any]:
    """One timed create run with cfg.create_concurrency closed-loop workers."""
    accepted = 0
    lat: list[float] = []
    errors = Counter[str]()
    t0 = time.perf_counter()
    stop_at = t0 + cfg.create_seconds

    async def worker(w: int) -> None:
        nonlocal accepted
        i = w
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            try:
                status, _ = await http.request("POST", CREATE_PATH, bodies[i % 1000], HEADERS)
            except Exception as exc:
                errors[type(exc).__name__] += 1
                continue
            lat.append((time.perf_counter() - t) * 1000)
            if status == 201:
                accepted += 1
            else:
                errors[f"HTTP {status}"] += 1
            i += cfg.create_concurrency

    async with asyncio.timeout(cfg.create_seconds + 30):
        await asyncio.gather(*(worker(w) for w in range(cfg.create_concurrency)))
    elapsed = time.perf_counter() - t0
    return {
        "accepted": accepted,
        "seconds": elapsed,
        "rate": accepted / elapsed,
        "errors": dict(errors),
        "post_ms": summary(lat),
    }


async def create(target: Target, cfg: Config, log: Log) -> dict[str, Any]:
    """Notifications/s accepted with no client connected, median over repeats."""
    http = HTTPPool(target.endpoints, cfg.create_concurrency)
    await http.start()
    bodies = [note_body({"users": [f"c{i}"]}, {"k": "c", "i": i}) for i in range(1000)]
    runs: list[dict[str, Any]] = []
    try:
        for _ in range(min(200, cfg.create_concurrency * 4)):  # warm-up
            await http.request("POST", CREATE_PATH, bodies[0], HEADERS)
        for r in range(cfg.create_repeats):
            cpu0, own0 = cpu_seconds(target.pids()), own_cpu_seconds()
            run = await _create_run(http, bodies, cfg)
            run["cpu_us"] = (cpu_seconds(target.pids()) - cpu0) * 1e6 / max(run["accepted"], 1)
            run["client_cpu_us"] = (own_cpu_seconds() - own0) * 1e6 / max(run["accepted"], 1)
            runs.append(run)
            log(
                f"create #{r + 1}: {run['rate']:,.0f}/s, post p99 {run['post_ms']['p99']:.1f} ms"
                + (f", errors {run['errors']}" if run["errors"] else "")
            )
    finally:
        http.close()
    return {
        "concurrency": cfg.create_concurrency,
        "runs": runs,
        "rate": median([r["rate"] for r in runs]),
        "cpu_us": median([r["cpu_us"] for r in runs]),
        "client_cpu_us": median([r["client_cpu_us"] for r in runs]),
        "errors": sum(sum(r["errors"].values()) for r in runs),
    }


def tokens_for(users: list[str]) -> dict[str, str]:
    exp = int(time.time()) + 3600
    return {u: jwt.encode({"sub": u, "exp": exp}, SECRET, algorithm="HS256") for u in users}


async def connect(target: Target, cfg: Config, log: Log) -> tuple[Pool, dict[str, Any]]:
    """Open cfg.connections sockets; memory per idle connection from server RSS."""
    tokens = tokens_for([f"u{i}" for i in range(cfg.connections)])
    await asyncio.sleep(1.0)
    before = rss_bytes(target.pids())
    cpu0 = cpu_seconds(target.pids())
    pool = await open_pool(
        cfg.connections,
        target.endpoints,
        lambda u: f"/ws?token={tokens[u]}",
        cfg.sources,
        concurrency=cfg.connect_concurrency,
        deadline=time.perf_counter() + cfg.connect_timeout,
        progress=lambda d, n: log(f"connected {d:,}/{n:,}"),
    )
    n_open = len(pool.open_indices)
    cpu1 = cpu_seconds(target.pids())
    cpu_us = (cpu1 - cpu0) * 1e6 / max(n_open, 1)
    log(
        f"{n_open:,}/{cfg.connections:,} open in {pool.seconds:.1f}s"
        + (f"; failures {pool.errors}" if pool.errors else "")
    )
    await asyncio.sleep(cfg.settle)
    after = rss_bytes(target.pids())
    idle_cpu = (cpu_seconds(target.pids()) - cpu1) / cfg.settle * 100
    per_conn = (after - before) / n_open if n_open else float("nan")
    log(
        f"idle: server RSS {before / 2**20:.0f} -> {after / 2**20:.0f} MiB, "
        f"{per_conn / 1024:.1f} KiB/connection"
    )
    return pool, {
        "requested": cfg.connections,
        "open": n_open,
        "failed": cfg.connections - n_open,
        "errors": pool.errors,
        "seconds": pool.seconds,
        "rate": n_open / pool.seconds if pool.seconds else 0.0,
        "cpu_us": cpu_us,
        "idle_cpu_pct": idle_cpu,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_connection": per_conn,
        "server_processes": len(target.pids()),
    }


async def targeted(target: Target, pool: Pool, cfg: Config, log: Log) -> dict[str, Any]:
    """R notifications/s to random connected users for T seconds; latency, loss, duplicates."""
    idx = pool.open_indices
    if not idx:
        return {"skipped": "no open connections"}
    http = HTTPPool(target.endpoints, cfg.publish_concurrency)
    await http.start()
    pool.sink.reset()
    col = Collector(pool.sink, "t")
    rng = random.Random(42)
    total = int(cfg.targeted_rate * cfg.targeted_seconds)
    sent_to: dict[int, int] = {}
    accepted: set[int] = set()
    post_ms: list[float] = []
    errors = Counter[str]()
    tasks: set[asyncio.Task[None]] = set()
    last_accept = 0.0

    async def publish(seq: int, ci: int, ts: float) -> None:
        nonlocal last_accept
        body = note_body({"users": [pool.users[ci]]}, {"ts": ts, "seq": seq, "k": "t"})
        try:
            status, _ = await http.request("POST", CREATE_PATH, body, HEADERS)
        except Exception as exc:
            errors[type(exc).__name__] += 1
            return
        post_ms.append((time.perf_counter() - ts) * 1000)
        if status == 201:
            accepted.add(seq)
            last_accept = time.perf_counter()
        else:
            errors[f"HTTP {status}"] += 1

    cpu0 = cpu_seconds(target.pids())
    t0 = time.perf_counter() + 0.05
    try:
        for seq in range(total):
            when = t0 + seq / cfg.targeted_rate
            delay = when - time.perf_counter()
            if delay > 0.0005:
                await asyncio.sleep(delay)
            if len(tasks) >= cfg.max_inflight:
                errors["generator backlog"] += 1
                continue
            ci = rng.choice(idx)
            sent_to[seq] = ci
            # Latency counts from the scheduled time (no coordinated omission), or from
            # the actual call when the loop woke a little early.
            task = asyncio.create_task(publish(seq, ci, min(when, time.perf_counter())))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if seq and seq % int(cfg.targeted_rate * 2) == 0:
                log(f"targeted: {seq:,}/{total:,} published, {len(accepted):,} accepted")
        if tasks:
            await asyncio.wait(set(tasks), timeout=15)
        for task in list(tasks):
            task.cancel()
        send_seconds = max(last_accept - t0, cfg.targeted_seconds)
        deadline = time.perf_counter() + cfg.drain_timeout
        while time.perf_counter() < deadline:
            col.collect()
            if len({d["seq"] for _, _, d in col.hits}) >= len(accepted):
                break
            await asyncio.sleep(0.05)
        col.collect()
        cpu = cpu_seconds(target.pids()) - cpu0
    finally:
        http.close()
    seen: Counter[int] = Counter()
    latencies, misrouted = [], 0
    for t, ci, data in col.hits:
        seq = data["seq"]
        seen[seq] += 1
        if seen[seq] == 1:
            latencies.append((t - data["ts"]) * 1000)
            misrouted += sent_to.get(seq) != ci
    lost = len(accepted - seen.keys())
    result: dict[str, Any] = {
        "rate": cfg.targeted_rate,
        "seconds": cfg.targeted_seconds,
        "connections": len(idx),
        "published": len(sent_to),
        "accepted": len(accepted),
        "achieved_rate": len(accepted) / send_seconds if send_seconds else 0.0,
        "delivered": len(seen),
        "lost": lost,
        "duplicated": sum(c - 1 for c in seen.values()),
        "misrouted": misrouted,
        "unconfirmed": len(seen.keys() - accepted),
        "errors": dict(errors),
        "connections_closed": pool.sink.closed,
        "other_frames": dict(col.other),
        "cpu_us": cpu * 1e6 / max(len(accepted), 1),
        "latency_ms": summary(latencies),
        "post_ms": summary(post_ms),
        "latency_curve": curve(latencies),
    }
    lat = result["latency_ms"]
    log(
        f"targeted: {len(accepted):,}/{total:,} accepted, {len(seen):,} delivered, lost {lost}, "
        f"dup {result['duplicated']}; p50 {lat['p50']:.2f} p99 {lat['p99']:.2f} "
        f"max {lat['max']:.2f} ms" + (f"; errors {dict(errors)}" if errors else "")
    )
    return result


async def targeted_repeated(target: Target, pool: Pool, cfg: Config, log: Log) -> dict[str, Any]:
    """:func:`targeted` ``cfg.targeted_repeats`` times: the run with the median p99 stands
    for them (latencies are that noisy here), with every run's p99 beside it, and loss,
    duplicates and errors summed over all of them."""
    runs = [await targeted(target, pool, cfg, log) for _ in range(cfg.targeted_repeats)]
    measured = [r for r in runs if "latency_ms" in r]
    if not measured:
        return runs[0]
    measured.sort(key=lambda r: r["latency_ms"]["p99"])
    result = dict(measured[len(measured) // 2])
    result["repeats_p99"] = [round(r["latency_ms"]["p99"], 2) for r in runs if "latency_ms" in r]
    for key in ("lost", "duplicated", "misrouted"):
        result[key] = sum(r[key] for r in measured)
    result["errors"] = dict(sum((Counter(r["errors"]) for r in measured), Counter()))
    result["achieved_rate"] = min(r["achieved_rate"] for r in measured)
    return result


async def broadcast(target: Target, pool: Pool, cfg: Config, log: Log) -> dict[str, Any]:
    """One notification to everyone, repeated; time until the last client has it."""
    n_open = len(pool.open_indices)
    if not n_open:
        return {"skipped": "no open connections"}
    http = HTTPPool(target.endpoints[:1], 1)
    await http.start()
    runs: list[dict[str, Any]] = []
    phase_end = time.perf_counter() + cfg.broadcast_budget
    try:
        for r in range(cfg.broadcast_repeats):
            if r >= 2 and time.perf_counter() > phase_end:
                log(f"broadcast: stopping after {r} runs (phase budget)")
                break
            pool.sink.reset()
            tag = f"b{r}"
            col = Collector(pool.sink, tag)
            cpu0, own0 = cpu_seconds(target.pids()), own_cpu_seconds()
            ts = time.perf_counter()
            status, _ = await http.request(
                "POST",
                CREATE_PATH,
                note_body({"all": True}, {"ts": ts, "seq": r, "k": tag}),
                HEADERS,
                max_wait=cfg.broadcast_timeout,
            )
            post = (time.perf_counter() - ts) * 1000
            if status != 201:
                runs.append({"error": f"HTTP {status}"})
                continue
            deadline = ts + cfg.broadcast_timeout
            got: set[int] = set()
            while time.perf_counter() < deadline:
                if pool.sink.count >= n_open:
                    col.collect()
                    got = {ci for _, ci, _ in col.hits}
                    if len(got) >= n_open:
                        break
                await asyncio.sleep(0.005)
            col.collect()
            cpu = cpu_seconds(target.pids()) - cpu0
            own = own_cpu_seconds() - own0
            first: dict[int, float] = {}
            for t, ci, _ in col.hits:
                first.setdefault(ci, t - ts)
            times = sorted(v * 1000 for v in first.values())
            last = times[-1] if times else float("nan")
            run = {
                "delivered": len(first),
                "lost": n_open - len(first),
                "duplicated": len(col.hits) - len(first),
                "post_ms": post,
                "last_ms": last,
                "p50_ms": times[len(times) // 2] if times else float("nan"),
                "rate": len(first) / (last / 1000) if times and last > 0 else 0.0,
                "curve": curve(times),
                "cpu_us": cpu * 1e6 / max(len(first), 1),
                "client_cpu_us": own * 1e6 / max(len(first), 1),
            }
            runs.append(run)
            log(
                f"broadcast #{r + 1}: {len(first):,}/{n_open:,} in {last:.1f} ms "
                f"({run['rate']:,.0f} deliveries/s), lost {run['lost']}"
            )
            await asyncio.sleep(0.5)
    finally:
        http.close()
    ok = [r for r in runs if "rate" in r]
    med = sorted(ok, key=lambda r: r["last_ms"])[len(ok) // 2] if ok else {}
    return {
        "connections": n_open,
        "runs": runs,
        "last_ms": median([r["last_ms"] for r in ok]),
        "rate": median([r["rate"] for r in ok]),
        "lost": sum(r["lost"] for r in ok),
        "duplicated": sum(r["duplicated"] for r in ok),
        "errors": len(runs) - len(ok),
        "curve": med.get("curve", []),
        "cpu_us": median([r["cpu_us"] for r in ok]),
        "connections_closed": pool.sink.closed,
        "client_cpu_us": median([r["client_cpu_us"] for r in ok]),
    }


async def sse(target: Target, cfg: Config, log: Log) -> dict[str, Any]:
    """Open cfg.sse_connections event streams: memory per idle stream from server RSS,
    then targeted notifications to them (latency, loss) as in :func:`targeted`."""
    from bench.sseclient import open_one_sse

    n = cfg.sse_connections
    tokens = tokens_for([f"s{i}" for i in range(n)])
    await asyncio.sleep(1.0)
    before = rss_bytes(target.pids())
    cpu0 = cpu_seconds(target.pids())
    pool = await open_pool(
        n,
        target.endpoints,
        lambda u: f"/api/v1/me/stream?token={tokens[u]}",
        cfg.sources,
        concurrency=cfg.connect_concurrency,
        deadline=time.perf_counter() + cfg.connect_timeout,
        opener=open_one_sse,
        prefix="s",
    )
    n_open = len(pool.open_indices)
    cpu_us = (cpu_seconds(target.pids()) - cpu0) * 1e6 / max(n_open, 1)
    await asyncio.sleep(cfg.settle)
    after = rss_bytes(target.pids())
    per_conn = (after - before) / n_open if n_open else float("nan")
    log(
        f"sse: {n_open:,}/{n:,} streams open; server RSS {before / 2**20:.0f} -> "
        f"{after / 2**20:.0f} MiB, {per_conn / 1024:.1f} KiB/stream"
    )
    result: dict[str, Any] = {
        "open": n_open,
        "errors": pool.errors,
        "cpu_us": cpu_us,
        "bytes_per_connection": per_conn,
    }
    try:
        if n_open:
            sub = replace(cfg, targeted_rate=cfg.sse_rate, targeted_seconds=cfg.sse_seconds)
            result["targeted"] = await targeted(target, pool, sub, log)
    finally:
        pool.close()
    return result
