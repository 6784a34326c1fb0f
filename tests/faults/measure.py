"""What the abuse suite measures: a server's memory and socket queues, and how long other
users wait for their notifications (quiet, then under attack)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from faults.clients import Follower, Load, percentile

TESTS = Path(__file__).resolve().parent.parent


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (``VmRSS``), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def send_queue_bytes(port: int) -> int:
    """Bytes sitting in kernel send queues of the server's sockets on ``port``."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                total += int(fields[4].split(":")[0], 16)
    return total


@dataclass
class Phase:
    seconds: float
    p50: float
    p99: float
    deliveries: int
    late: int
    """Deliveries owed in the window that had not arrived when it was measured."""
    rss_max: int
    send_queue_max: int


async def phase(
    pid: int, port: int, observers: Sequence[Follower], load: Load, seconds: float
) -> Phase:
    """Watch for ``seconds``: memory, queues, and the delivery latency of what was sent."""
    began = time.monotonic()
    rss_max = queue_max = 0
    while time.monotonic() - began < seconds:
        rss_max = max(rss_max, rss_bytes(pid))
        queue_max = max(queue_max, send_queue_bytes(port))
        await asyncio.sleep(0.1)
    ended = time.monotonic()
    await asyncio.sleep(1.0)  # what was sent at the end may still arrive in time
    now = time.monotonic()
    latencies: list[float] = []
    late = 0
    for observer in observers:
        arrived = dict(zip(observer.received, observer.arrivals, strict=True))
        for id_, sent in list(load.sent_at.items()):
            if not began <= sent <= ended or id_ not in load.acked:
                continue
            if observer.user not in load.acked[id_]:
                continue
            if id_ in arrived:
                latencies.append(arrived[id_] - sent)
            else:
                late += 1
                latencies.append(now - sent)  # at least this late
    return Phase(
        seconds=round(ended - began, 1),
        p50=percentile(latencies, 0.5),
        p99=percentile(latencies, 0.99),
        deliveries=len(latencies),
        late=late,
        rss_max=rss_max,
        send_queue_max=queue_max,
    )


class Abuser:
    """``python -m faults.abusers`` in a process of its own; ``result()`` is its JSON."""

    def __init__(self, kind: str, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent / "src")])}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "faults.abusers", kind, *args],
            cwd=TESTS,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    async def result(self, within: float = 60) -> dict:
        import json

        try:
            out, err = await asyncio.to_thread(self.process.communicate, None, within)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = await asyncio.to_thread(self.process.communicate)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        assert lines, f"abuser said nothing (exit {self.process.returncode}): {err[-2000:]}"
        return json.loads(lines[-1])

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
