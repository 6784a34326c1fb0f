"""Runs every scenario against every target, in order, within a global time budget."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.procs import TargetUnavailable
from bench.profile import Profiler
from bench.scenarios import Config
from bench.targets import Target, make_target

T0 = time.perf_counter()


def progress(target: str, text: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s] {target:<15} {text}", flush=True)


async def phase(
    name: str,
    target: Target,
    run: Callable[[], Awaitable[Any]],
    budget_end: float,
    profiler: Profiler,
) -> Any:
    """Run one phase, turning failures and an exhausted budget into recorded errors."""
    remaining = budget_end - time.perf_counter()
    if remaining < 5:
        progress(target.name, f"{name}: skipped (time budget)")
        return {"skipped": "time budget"}
    pids = [s.pid for s in target.servers if s.alive()] if target.name.startswith("tidings") else []
    try:
        async with asyncio.timeout(remaining), profiler.phase(target.name, name, pids):
            return await run()
    except TimeoutError:
        progress(target.name, f"{name}: stopped by the time budget")
        return {"error": "time budget"}
    except Exception as exc:
        progress(target.name, f"{name}: failed: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}


async def run_target(
    name: str,
    cfg: Config,
    workdir: Path,
    budget_end: float,
    profiler: Profiler,
) -> dict[str, Any]:
    """Start ``name``, run create, connect (idle), targeted and broadcast, stop it."""
    target = make_target(name, workdir)

    def log(text: str) -> None:
        progress(name, text)

    result: dict[str, Any] = {"label": target.label}
    log(f"starting {target.label}")
    try:
        await target.start()
    except TargetUnavailable as exc:
        log(f"unavailable: {exc}")
        await target.stop()
        return {**result, "unavailable": str(exc)}
    log(f"ready on {', '.join(f'{h}:{p}' for h, p in target.endpoints)}")
    pool = None
    try:
        args = (budget_end, profiler)
        result["create"] = await phase(
            "create", target, lambda: scenarios.create(target, cfg, log), *args
        )
        got = await phase("connect", target, lambda: scenarios.connect(target, cfg, log), *args)
        if isinstance(got, tuple):
            pool, result["idle"] = got
            # The generator's own full collections over 10,000 connections' objects took
            # up to 0.7 s: freeze what is alive now so they cannot skew receipt times.
            gc.collect()
            gc.freeze()
            result["targeted"] = await phase(
                "targeted",
                target,
                lambda: scenarios.targeted_repeated(target, pool, cfg, log),
                *args,
            )
            result["broadcast"] = await phase(
                "broadcast", target, lambda: scenarios.broadcast(target, pool, cfg, log), *args
            )
        else:
            result["idle"] = got
        gc.unfreeze()

        if not target.alive():
            result["crashed"] = target.logs()
            log(f"server died during the run:\n{target.logs()}")
    finally:
        if pool is not None:
            pool.close()
        await target.stop()
        log("stopped")
    if name.startswith("tidings") and cfg.sse_connections and "crashed" not in result:
        result["sse"] = await run_sse(name, cfg, workdir, budget_end, profiler)
    return result


async def run_sse(
    name: str,
    cfg: Config,
    workdir: Path,
    budget_end: float,
    profiler: Profiler,
) -> dict[str, Any]:
    """The SSE phase on a server of its own: on the first one, streams would reuse the
    memory that 10,000 closed WebSockets left behind, and RSS would hardly move."""
    target = make_target(name, workdir)
    try:
        await target.start()
        progress(name, "restarted for the SSE phase")
        return await phase(
            "sse",
            target,
            lambda: scenarios.sse(target, cfg, lambda text: progress(name, text)),
            budget_end,
            profiler,
        )
    except TargetUnavailable as exc:
        return {"error": str(exc)}
    finally:
        await target.stop()


async def run_all(
    names: list[str],
    cfg: Config,
    workdir: Path,
    budget: float,
    profiler: Profiler,
) -> dict[str, Any]:
    budget_end = time.perf_counter() + budget
    results: dict[str, Any] = {}
    for name in names:
        results[name] = await run_target(name, cfg, workdir, budget_end, profiler)
        await asyncio.sleep(1.0)  # let sockets and memory settle between targets
    return results
