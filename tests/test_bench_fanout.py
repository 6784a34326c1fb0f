"""``python -m bench.fanout`` measures what it claims: both paths put the same frame on
every socket, and the command prints its table (so it cannot rot)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import uvloop

from bench.fanout import PATHS, Fanouts, Sockets
from tidings.web.wsdirect import text_frame

ROOT = Path(__file__).resolve().parent.parent


def test_the_ceiling_and_the_hub_write_the_same_frame_to_every_socket() -> None:
    async def run() -> dict[str, list[bytes]]:
        sockets = Sockets()
        await sockets.open(40)
        fanouts = Fanouts(sockets.transports)
        frames: dict[str, list[bytes]] = {}
        for path in PATHS:
            fanouts.run(path)
            await asyncio.sleep(0.05)
            frames[path] = sockets.drain()
            frames[path + ":expected"] = [text_frame(fanouts.last_payload)]
        return frames

    frames = uvloop.run(run())
    for path in PATHS:
        assert frames[path] == frames[path + ":expected"] * 40, path


def test_the_command_prints_both_paths() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.fanout", "--connections", "100", "--rounds", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split()[0] for line in proc.stdout.splitlines()[2:] if line.strip()}
    assert rows == set(PATHS), proc.stdout
