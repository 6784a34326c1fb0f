"""Development mode only: the log viewer and room demos, and a synthetic log source.

``POST /api/v1/dev/logs`` publishes made-up log lines to ``logs.<source>`` topics
(``{"level", "source", "env", "msg"}``) at a chosen rate for a few seconds, so the
``/demo/logs`` page has something to follow; at 5,000 lines a second it shows the
per-connection budget coalescing them (see :mod:`tidings.coalesce`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from pydantic import Field

from tidings.errors import TidingsError
from tidings.web.api import AppDep
from tidings.web.schemas import Strict

log = logging.getLogger("tidings.dev")

STATIC = Path(__file__).parent / "static"
SOURCES = ("api", "db", "web", "worker")
ENVIRONMENTS = ("prod", "staging")
LEVELS = (("debug", 30), ("info", 50), ("warning", 12), ("error", 8))
MESSAGES = (
    "GET /api/v1/orders 200 in 12 ms",
    "cache miss for user profile",
    "slow query: 240 ms on orders_by_customer",
    "retrying payment webhook (attempt 2)",
    "connection pool at 80%",
    "job finished: nightly-report",
    "upstream timed out after 5 s",
)

router = APIRouter()
_running: dict[str, asyncio.Task[None]] = {}


class LogRunIn(Strict):
    rate: int = Field(50, ge=1, le=10_000, description="lines per second")
    seconds: float = Field(10.0, gt=0, le=60, description="for how long")


@router.get("/demo/logs", include_in_schema=False)
async def logs_page() -> Response:
    return FileResponse(STATIC / "demo-logs.html", headers={"Cache-Control": "no-cache"})


@router.get("/demo/room", include_in_schema=False)
async def room_page() -> Response:
    return FileResponse(STATIC / "demo-room.html", headers={"Cache-Control": "no-cache"})


@router.post("/api/v1/dev/logs", status_code=202, tags=["development"])
async def generate_logs(body: LogRunIn, app: AppDep) -> dict[str, Any]:
    """Publish synthetic log lines to ``logs.<source>``. Development mode only."""
    previous = _running.pop("logs", None)
    if previous is not None:
        previous.cancel()
    task = asyncio.create_task(_generate(app.service, body.rate, body.seconds))
    _running["logs"] = task
    return {"rate": body.rate, "seconds": body.seconds, "topics": [f"logs.{s}" for s in SOURCES]}


def line(rng: random.Random, number: int) -> tuple[str, dict[str, Any]]:
    """One made-up log line: its topic and data."""
    source = rng.choice(SOURCES)
    level = rng.choices([name for name, _ in LEVELS], [w for _, w in LEVELS])[0]
    data = {
        "level": level,
        "source": source,
        "env": rng.choice(ENVIRONMENTS),
        "msg": f"{rng.choice(MESSAGES)} #{number}",
    }
    return f"logs.{source}", data


async def _generate(service: Any, rate: int, seconds: float) -> None:
    rng = random.Random()
    counter = itertools.count(1)
    tick = 0.01
    started = time.monotonic()
    sent = 0
    with contextlib.suppress(asyncio.CancelledError):
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) + 1 - sent
            for _ in range(max(due, 0)):
                topic, data = line(rng, next(counter))
                try:
                    await service.publish_topic(topic, data)
                except TidingsError as exc:
                    log.warning("synthetic log line dropped: %s", exc)
                sent += 1
            await asyncio.sleep(tick)
