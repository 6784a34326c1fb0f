"""Loaded into a server under ``python -m bench.memprobe``: SIGUSR1 dumps memory facts.

Each SIGUSR1 writes, under ``$BENCH_MEMPROBE_DIR``: ``<n>.types.json`` (live gc objects
by type), ``<n>.gc.json`` (every garbage collection so far: generation, pause seconds)
and, when ``BENCH_MEMPROBE_FRAMES`` > 0, a tracemalloc ``<n>.snapshot``.
``BENCH_GC_THRESHOLD=a,b,c`` applies ``gc.set_threshold`` at start (to try a fix).
``BENCH_PROBE_AIOSQLITE=1`` times every aiosqlite call: queue-to-thread wait, run time in
the thread, and thread-to-loop wait, written to ``<n>.sqlite.json``.
"""

import gc
import json
import os
import signal
import time
import tracemalloc
from collections import Counter
from typing import Any

_dir = os.environ.get("BENCH_MEMPROBE_DIR")
_frames = int(os.environ.get("BENCH_MEMPROBE_FRAMES", "1"))
_count = [0]
_pauses: list[tuple[int, float]] = []
_started = [0.0]


def _on_gc(phase: str, info: dict) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    elif len(_pauses) < 1_000_000:
        _pauses.append((info["generation"], time.perf_counter() - _started[0]))


_sqlite: list[tuple[float, float, float]] = []


def _patch_aiosqlite() -> None:
    import aiosqlite.core as core

    original = core.Connection._execute

    async def _execute(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        submitted = time.perf_counter()
        span: list[float] = []

        def timed() -> Any:
            span.append(time.perf_counter())
            try:
                return fn(*args, **kwargs)
            finally:
                span.append(time.perf_counter())

        try:
            return await original(self, timed)
        finally:
            if len(span) == 2 and len(_sqlite) < 1_000_000:
                done = time.perf_counter()
                _sqlite.append((span[0] - submitted, span[1] - span[0], done - span[1]))

    core.Connection._execute = _execute  # type: ignore[method-assign]


def _dump(signum: int, frame: object) -> None:
    _count[0] += 1
    base = os.path.join(_dir or ".", str(_count[0]))
    with open(base + ".sqlite.json", "w") as fh:
        json.dump(_sqlite, fh)
    with open(base + ".gc.json", "w") as fh:
        json.dump(_pauses, fh)
    types = Counter(type(o).__qualname__ for o in gc.get_objects())
    with open(base + ".types.json", "w") as fh:
        json.dump(dict(types), fh)
    if _frames > 0:
        tracemalloc.take_snapshot().dump(base + ".snapshot")
    with open(base + ".done", "w") as fh:
        fh.write("ok")


if _dir:
    if _frames > 0 and not tracemalloc.is_tracing():
        tracemalloc.start(_frames)
    if os.environ.get("BENCH_GC_THRESHOLD"):
        gc.set_threshold(*(int(x) for x in os.environ["BENCH_GC_THRESHOLD"].split(",")))
    gc.callbacks.append(_on_gc)
    if os.environ.get("BENCH_PROBE_AIOSQLITE"):
        _patch_aiosqlite()
    signal.signal(signal.SIGUSR1, _dump)
