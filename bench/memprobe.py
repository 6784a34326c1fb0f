"""Diagnostics for one server: memory per idle connection, and GC pauses under load.

``python -m bench.memprobe [--connections 2000]`` starts the target with
``bench/memprobe_site/sitecustomize.py`` loaded, snapshots it before and after opening
the connections and prints bytes per connection by source line (tracemalloc) and live
objects per connection by type. ``--targeted SECONDS`` then runs the targeted scenario
(tracemalloc off) and reports the garbage collections and pauses that happened during it;
``--gc-threshold 700,10,1000`` tries it with other collector thresholds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.procs import rss_bytes
from bench.stats import summary
from bench.targets import make_target, use_tidings_revision
from bench.wsclient import open_pool

SITE = Path(__file__).resolve().parent / "memprobe_site"


async def _dump(pid: int, outdir: Path, n: int) -> dict[str, Any]:
    os.kill(pid, signal.SIGUSR1)
    done = outdir / f"{n}.done"
    deadline = time.monotonic() + 60
    while not done.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("server did not write its snapshot")
        await asyncio.sleep(0.2)
    snap = outdir / f"{n}.snapshot"
    return {
        "types": json.loads((outdir / f"{n}.types.json").read_text()),
        "gc": json.loads((outdir / f"{n}.gc.json").read_text()),
        "sqlite": json.loads((outdir / f"{n}.sqlite.json").read_text()),
        "snapshot": tracemalloc.Snapshot.load(str(snap)) if snap.exists() else None,
    }


def _print_memory(before: dict[str, Any], after: dict[str, Any], n: int, top: int) -> None:
    s0, s1 = before["snapshot"], after["snapshot"]
    if s0 is not None and s1 is not None:
        traced = sum(s.size_diff for s in s1.compare_to(s0, "filename"))
        print(f"Python heap (tracemalloc): +{traced / n:,.0f} B/conn\n")
        print("  B/conn  blocks/conn  allocated at")
        for stat in s1.compare_to(s0, "lineno")[:top]:
            f = stat.traceback[0]
            where = f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.lineno}"
            print(f"{stat.size_diff / n:8,.0f}  {stat.count_diff / n:11.2f}  {where}")
    t0, t1 = before["types"], after["types"]
    print(
        "\nlive gc-tracked objects per connection, by type "
        f"(total {(sum(t1.values()) - sum(t0.values())) / n:,.1f})"
    )
    diffs = sorted(((t1.get(k, 0) - t0.get(k, 0)) / n, k) for k in t1)
    for per, kind in reversed(diffs[-top:]):
        print(f"{per:8.2f}  {kind}")


def _print_sqlite(before: dict[str, Any], after: dict[str, Any], notifications: int) -> None:
    calls = after["sqlite"][len(before["sqlite"]) :]
    if not calls:
        return
    print(
        f"\naiosqlite calls during targeted load: {len(calls):,} "
        f"({len(calls) / max(notifications, 1):.2f} per notification)"
    )
    for i, what in enumerate(
        ("wait for the sqlite thread", "run in the sqlite thread", "wait for the event loop")
    ):
        s = summary([c[i] * 1000 for c in calls])
        print(
            f"  {what:<28} p50 {s['p50']:7.3f}  p90 {s['p90']:7.3f}  p99 {s['p99']:7.3f}  "
            f"max {s['max']:7.1f} ms; total {sum(c[i] for c in calls):6.2f} s"
        )


def _print_gc(before: dict[str, Any], after: dict[str, Any], seconds: float) -> None:
    pauses = after["gc"][len(before["gc"]) :]
    print(f"\ngarbage collections during {seconds:g}s of targeted load:")
    for gen in (0, 1, 2):
        ms = [p * 1000 for g, p in pauses if g == gen]
        if ms:
            print(
                f"  gen{gen}: {len(ms):5d} collections, total {sum(ms):8.1f} ms, "
                f"max {max(ms):7.1f} ms"
            )


async def probe(args: argparse.Namespace) -> None:
    outdir = Path(tempfile.mkdtemp(prefix="memprobe-"))
    frames = 0 if args.targeted else args.frames
    os.environ.update({"BENCH_MEMPROBE_DIR": str(outdir), "BENCH_MEMPROBE_FRAMES": str(frames)})
    if args.targeted:
        os.environ["BENCH_PROBE_AIOSQLITE"] = "1"
    if args.gc_threshold:
        os.environ["BENCH_GC_THRESHOLD"] = args.gc_threshold
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SITE), os.environ.get("PYTHONPATH")) if p
    )
    if args.tidings_rev:
        print(f"tidings from {use_tidings_revision(args.tidings_rev)}")
    target = make_target(args.target, outdir)
    await target.start()
    pool = None
    log = lambda text: print(f"  {text}", flush=True)  # noqa: E731
    try:
        pid = target.pids()[0]
        await asyncio.sleep(1)
        rss0 = rss_bytes([pid])
        first = await _dump(pid, outdir, 1)
        tokens = scenarios.tokens_for([f"u{i}" for i in range(args.connections)])
        pool = await open_pool(
            args.connections,
            target.endpoints,
            lambda u: f"/ws?token={tokens[u]}",
            [f"127.0.0.{i}" for i in range(2, 10)],
        )
        n = len(pool.open_indices)
        await asyncio.sleep(2)
        rss1 = rss_bytes([pid])
        second = await _dump(pid, outdir, 2)
        print(
            f"{args.target}: {n} connections, RSS +{(rss1 - rss0) / n:,.0f} B/conn"
            + (" (with tracemalloc)" if frames else "")
        )
        _print_memory(first, second, n, args.top)
        if args.targeted:
            cfg = scenarios.Config(targeted_rate=args.rate, targeted_seconds=args.targeted)
            result = await scenarios.targeted(target, pool, cfg, log)
            third = await _dump(pid, outdir, 3)
            _print_gc(second, third, args.targeted)
            _print_sqlite(second, third, result["accepted"])
            print("  latency ms:", {k: round(v, 2) for k, v in result["latency_ms"].items()})
            print(
                "  POST ms:   ",
                {k: round(v, 2) for k, v in summary([]).items()}
                if not result.get("post_ms")
                else {k: round(v, 2) for k, v in result["post_ms"].items()},
            )
    finally:
        if pool is not None:
            pool.close()
        await target.stop()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.memprobe", description=__doc__)
    p.add_argument("--target", default="tidings")
    p.add_argument("--connections", type=int, default=2000)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--frames", type=int, default=1, help="tracemalloc depth (0 = off)")
    p.add_argument("--targeted", type=float, default=0.0, help="seconds of targeted load")
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--tidings-rev", metavar="REV", help="run tidings from git revision REV")
    p.add_argument("--gc-threshold", help="e.g. 700,10,1000 (gc.set_threshold in the server)")
    asyncio.run(probe(p.parse_args()))


if __name__ == "__main__":
    main()
