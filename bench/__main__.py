"""Command line: ``python -m bench [--smoke] [--targets raw,channels,tidings,tidings-scaled]``."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench.scenarios import Config
from bench.targets import ALL_TARGETS, EXTRA_TARGETS

HERE = Path(__file__).resolve().parent
FIFTY_SECONDS = 300.0  # on top of --budget: bench.fifty takes about 90 s on a quiet machine
NEEDS = {"channels": ["django", "channels", "channels_redis", "daphne"], "*": ["matplotlib"]}


def ensure_requirements(targets: list[str]) -> None:
    """pip-install bench/requirements.txt when a module the run needs is missing."""
    wanted = NEEDS["*"] + (NEEDS["channels"] if "channels" in targets else [])
    missing = [m for m in wanted if importlib.util.find_spec(m) is None]
    if not missing:
        return
    print(f"installing bench requirements (missing: {', '.join(missing)})", flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "-r", str(HERE / "requirements.txt")],
        check=False,
        timeout=600,
    )


def config(args: argparse.Namespace) -> Config:
    if args.smoke:
        cfg = Config(
            connections=300,
            targeted_rate=200,
            targeted_seconds=3,
            targeted_repeats=1,
            broadcast_repeats=3,
            broadcast_timeout=10,
            create_seconds=1.5,
            create_repeats=1,
            create_concurrency=16,
            publish_concurrency=16,
            drain_timeout=3,
            connect_timeout=30,
            settle=1.0,
            sse_connections=300,
            sse_rate=100,
            sse_seconds=2,
        )
    else:
        cfg = Config()
    if args.connections:
        cfg.connections = args.connections
    if args.rate:
        cfg.targeted_rate = args.rate
    if args.seconds:
        cfg.targeted_seconds = args.seconds
    if args.repeats:
        cfg.broadcast_repeats = args.repeats
    return cfg


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--smoke", action="store_true", help="a few hundred connections, seconds long")
    p.add_argument(
        "--targets",
        default=",".join(ALL_TARGETS),
        help=f"comma-separated, from {','.join(ALL_TARGETS + EXTRA_TARGETS)}",
    )
    p.add_argument("--connections", type=int, help="WebSocket connections (default 10,000)")
    p.add_argument("--rate", type=float, help="targeted notifications/s (default 1,000)")
    p.add_argument("--seconds", type=float, help="targeted duration (default 10)")
    p.add_argument("--repeats", type=int, help="broadcast repeats (default 5)")
    p.add_argument("--budget", type=float, default=840.0, help="overall time budget in seconds")
    p.add_argument("--out", type=Path, default=HERE / "results", help="where latest.* go")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target check fails")
    p.add_argument(
        "--profile",
        action="store_true",
        help="sample tidings servers with py-spy per phase (into OUT/profiles)",
    )
    p.add_argument(
        "--tidings-rev",
        metavar="REV",
        help="run tidings from git revision REV (e.g. HEAD) instead of the working tree",
    )
    p.add_argument("--no-install", action="store_true", help="do not pip-install requirements")
    p.add_argument(
        "--no-fifty",
        action="store_true",
        help="skip the 50,000-connection scenario (python -m bench.fifty) that a "
        "full run with the tidings target ends with",
    )
    return p.parse_args(argv)


def run_fifty(args: argparse.Namespace, seconds_left: float) -> list[tuple[str, bool, str]]:
    """Run ``python -m bench.fifty`` in its own processes; its checks, tagged ``[50k]``.

    It starts its own server and generator processes (the open-file limit is per process),
    so it runs after every other target has stopped and has the machine to itself.
    """
    out = args.out / "fifty.json"
    budget = max(seconds_left, 300.0)
    command = [
        sys.executable,
        "-m",
        "bench.fifty",
        "--out",
        str(out),
        "--budget",
        str(int(budget)),
    ]
    if args.tidings_rev:
        command += ["--tidings-rev", args.tidings_rev]
    print("\n50,000 connections (python -m bench.fifty):", flush=True)
    out.unlink(missing_ok=True)
    subprocess.run(command, check=False, timeout=budget + 120)
    if not out.exists():
        return [("50,000 connections scenario completed", False, "bench.fifty wrote no results")]
    run = json.loads(out.read_text())
    return [(f"[50k] {c['check']}", c["passed"], c["detail"]) for c in run["checks"]]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = set(names) - set(ALL_TARGETS + EXTRA_TARGETS)
    if unknown:
        print(f"unknown targets: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if not args.no_install:
        ensure_requirements(names)
    from bench import report, runner  # after the install: report imports matplotlib lazily
    from bench.profile import Profiler

    cfg = config(args)
    profiler = Profiler(args.out / "profiles" if args.profile else None)
    if args.profile and profiler.exe is None:
        print("--profile: py-spy not found (pip install py-spy); profiling off", flush=True)
    workdir = args.out / "tmp"
    tidings_rev = "working tree"
    if args.tidings_rev:
        from bench.targets import use_tidings_revision

        tidings_rev = use_tidings_revision(args.tidings_rev)
    started = time.time()
    print(
        f"bench: targets {', '.join(names)}; {cfg.connections:,} connections, "
        f"{cfg.targeted_rate:,.0f}/s for {cfg.targeted_seconds:g}s, "
        f"{cfg.broadcast_repeats} broadcasts; budget {args.budget:.0f}s; "
        f"tidings from {tidings_rev}",
        flush=True,
    )
    try:
        import uvloop

        results = uvloop.run(runner.run_all(names, cfg, workdir, args.budget, profiler))
    except ImportError:
        results = asyncio.run(runner.run_all(names, cfg, workdir, args.budget, profiler))
    full = cfg.connections >= 10_000 and cfg.targeted_rate >= 1_000
    items = report.checks(results, full)
    if full and "tidings" in names and not args.smoke and not args.no_fifty:
        items += run_fifty(args, args.budget + FIFTY_SECONDS - (time.time() - started))
    print("\n" + report.table(results) + "\n")
    print(report.verdict_lines(items), flush=True)
    payload = {
        "started": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(),
        "seconds": round(time.time() - started, 1),
        "smoke": args.smoke,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "config": asdict(cfg),
        "tidings": tidings_rev,
        "results": results,
        "checks": [{"check": d, "passed": ok, "detail": det} for d, ok, det in items],
        "profiles": profiler.summaries,
    }
    report.write_json(args.out / "latest.json", payload)
    drew = report.chart(args.out / "latest.png", results)
    chart_note = f", chart: {args.out / 'latest.png'}" if drew else " (no chart: no matplotlib)"
    print(f"\nresults: {args.out / 'latest.json'}{chart_note}")
    crashed = [n for n, r in results.items() if "crashed" in r]
    if crashed:
        print(f"servers crashed: {', '.join(crashed)}", file=sys.stderr)
        return 1
    if args.strict and any(ok is False for _, ok, _ in items):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
