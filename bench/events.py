"""Events and preferences against plain creates and reads, in the same run.

``python -m bench.events`` starts ``tidings serve`` (embedded: SQLite and the memory
broker), then alternates timed runs of plain creates and of events rendered from a
two-locale template (closed loop, same concurrency), and timed reads of 50-item pages
by a user without and with preferences (a muted type and category). It prints both
ratios: events/s over creates/s (target at least 0.7; also from server CPU per request,
which a busy host disturbs less) and the page time with preferences over without
(target at most 1.3).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt
import orjson

from bench.httpclient import HTTPPool
from bench.procs import cpu_seconds
from bench.stats import median
from bench.targets import API_KEY, SECRET, TidingsTarget

BACKEND = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
TEMPLATE = {
    "title": "{{ actor }} assigned you {{ task }}",
    "body": "Due {{ due }} in {{ project }}",
    "url": "/tasks/{{ id }}",
    "category": "tasks",
    "locales": {
        "de": {"title": "{{ actor }} hat dir {{ task }} zugewiesen", "body": "Fällig {{ due }}"},
        "fr": {"title": "{{ actor }} vous a assigné {{ task }}", "body": "Pour {{ due }}"},
    },
}


def _user_headers(user: str) -> dict[str, str]:
    claims = {"sub": user, "exp": int(time.time()) + 3600}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


async def _measured(
    target: TidingsTarget, http: HTTPPool, make: Any, seconds: float, workers: int
) -> tuple[float, float]:
    """Creates per second, and server CPU microseconds per create (steadier on a busy host)."""
    cpu0 = cpu_seconds(target.pids())
    t0 = time.perf_counter()
    rate = await _closed_loop(http, make, seconds, workers, 201)
    done = rate * (time.perf_counter() - t0)
    return rate, (cpu_seconds(target.pids()) - cpu0) * 1e6 / max(done, 1)


async def _closed_loop(
    http: HTTPPool, make: Any, seconds: float, workers: int, expect: int
) -> float:
    """Requests per second answered with ``expect`` by ``workers`` closed-loop workers."""
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = w
        while time.perf_counter() < stop_at:
            method, path, body, headers = make(i)
            status, _ = await http.request(method, path, body, headers)
            if status != expect:
                raise RuntimeError(f"{method} {path}: HTTP {status}")
            done += 1
            i += workers

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return done / (time.perf_counter() - t0)


def _create(i: int) -> tuple[str, str, bytes, dict[str, str]]:
    body = {"to": {"users": [f"c{i % 1000}"]}, "type": "bench", "title": f"Task {i}",
            "body": "Due Friday", "url": f"/tasks/{i}", "data": {"i": i}}  # fmt: skip
    return "POST", "/api/v1/notifications", orjson.dumps(body), BACKEND


def _event(i: int) -> tuple[str, str, bytes, dict[str, str]]:
    data = {"task": f"T-{i}", "due": "Friday", "project": "Apollo", "id": i}
    body = {"type": "task.assigned", "to": {"users": [f"c{i % 1000}"]}, "actor": "bob",
            "data": data}  # fmt: skip
    return "POST", "/api/v1/events", orjson.dumps(body), BACKEND


async def _seed_reader(http: HTTPPool, user: str) -> None:
    """60 items for ``user``, 10 of them of a type or category the muted reader hides."""
    for i in range(60):
        kind = ("chat", None) if i % 12 == 0 else ("bench", "news" if i % 12 == 6 else None)
        body = {"to": {"users": [user]}, "type": kind[0], "category": kind[1], "title": f"n{i}"}
        status, _ = await http.request("POST", "/api/v1/notifications", orjson.dumps(body), BACKEND)
        assert status == 201, status


async def run(seconds: float, repeats: int, workers: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="tidings-bench-events-"))
    target = TidingsTarget("tidings", "tidings (embedded)", workdir)
    await target.start()
    http = HTTPPool(target.endpoints, workers)
    await http.start()
    try:
        body = orjson.dumps(TEMPLATE)
        status, _ = await http.request("PUT", "/api/v1/templates/task.assigned", body, BACKEND)
        assert status == 200, status
        for user in ("plain-reader", "muted-reader"):
            await _seed_reader(http, user)
        prefs = {"types": {"chat": {"enabled": False}}, "categories": {"news": {"enabled": False}}}
        status, _ = await http.request(
            "PUT", "/api/v1/users/muted-reader/preferences", orjson.dumps(prefs), BACKEND
        )
        assert status == 200, status
        for make in (_create, _event):  # warm-up
            await _closed_loop(http, make, 0.5, workers, 201)
        creates, events, plain_pages, muted_pages = [], [], [], []
        page = "/api/v1/me/notifications?limit=50"
        plain, muted = _user_headers("plain-reader"), _user_headers("muted-reader")
        for _ in range(repeats):
            creates.append(await _measured(target, http, _create, seconds, workers))
            events.append(await _measured(target, http, _event, seconds, workers))
            plain_ms, muted_ms = await _pages(http, page, plain, muted, seconds)
            plain_pages.append(plain_ms)
            muted_pages.append(muted_ms)
    finally:
        http.close()
        await target.stop()
    # Ratios per adjacent pair of runs, then the median: the host's load drifts.
    pairs = list(zip(creates, events, strict=True))
    return {
        "creates_per_s": median([c[0] for c in creates]),
        "events_per_s": median([e[0] for e in events]),
        "create_server_cpu_us": median([c[1] for c in creates]),
        "event_server_cpu_us": median([e[1] for e in events]),
        "events_over_creates": median([e[0] / c[0] for c, e in pairs]),
        "events_over_creates_by_cpu": median([c[1] / e[1] for c, e in pairs]),
        "page_ms": median(plain_pages),
        "page_with_preferences_ms": median(muted_pages),
        "preferences_page_ratio": median(
            [m / p for p, m in zip(plain_pages, muted_pages, strict=True)]
        ),
    }


async def _pages(
    http: HTTPPool, path: str, plain: dict[str, str], muted: dict[str, str], seconds: float
) -> tuple[float, float]:
    """Median milliseconds of a page read without and with preferences, interleaved (so
    both see the same machine) and paced within each user's inbox read budget."""
    times: dict[int, list[float]] = {0: [], 1: []}
    stop_at = time.perf_counter() + seconds
    while time.perf_counter() < stop_at:
        for which, headers in enumerate((plain, muted)):
            t = time.perf_counter()
            status, _ = await http.request("GET", path, b"", headers)
            if status != 200:
                raise RuntimeError(f"GET {path}: HTTP {status}")
            times[which].append((time.perf_counter() - t) * 1000)
        await asyncio.sleep(0.15)  # under TIDINGS_READ_RATE per user
    return median(times[0]), median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()
    result = asyncio.run(run(args.seconds, args.repeats, args.workers))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
