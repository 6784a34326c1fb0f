"""Runs every scenario against every target, in order, within a global time budget."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.procs import TargetUnavailable
from bench.scenarios import Config
from bench.targets import make_target

T0 = time.perf_counter()


def progress(target: str, text: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s] {target:<15} {text}", flush=True)


async def phase(
    name: str, target: str, run: Callable[[], Awaitable[Any]], budget_end: float,
) -> Any:
    """Run one phase, turning failures and an exhausted budget into recorded errors."""
    remaining = budget_end - time.perf_counter()
    if remaining < 5:
        progress(target, f"{name}: skipped (time budget)")
        return {"skipped": "time budget"}
    try:
        async with asyncio.timeout(remaining):
            return await run()
    except TimeoutError:
        progress(target, f"{name}: stopped by the time budget")
        return {"error": "time budget"}
    except Exception as exc:
        progress(target, f"{name}: failed: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}


async def run_target(name: str, cfg: Config, workdir: Path, budget_end: float) -> dict[str, Any]:
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
        result["create"] = await phase(
            "create", name, lambda: scenarios.create(target, cfg, log), budget_end)
        got = await phase("connect", name, lambda: scenarios.connect(target, cfg, log), budget_end)
        if isinstance(got, tuple):
            pool, result["idle"] = got
            result["targeted"] = await phase(
                "targeted", name, lambda: scenarios.targeted(target, pool, cfg, log), budget_end)
            result["broadcast"] = await phase(
                "broadcast", name, lambda: scenarios.broadcast(target, pool, cfg, log), budget_end)
        else:
            result["idle"] = got
        if not target.alive():
            result["crashed"] = target.logs()
            log(f"server died during the run:\n{target.logs()}")
    finally:
        if pool is not None:
            pool.close()
        await target.stop()
        log("stopped")
    return result


async def run_all(names: list[str], cfg: Config, workdir: Path, budget: float) -> dict[str, Any]:
    budget_end = time.perf_counter() + budget
    results: dict[str, Any] = {}
    for name in names:
        results[name] = await run_target(name, cfg, workdir, budget_end)
        await asyncio.sleep(1.0)  # let sockets and memory settle between targets
    return results
