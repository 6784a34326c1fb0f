"""Smoke run of the benchmark suite against the raw peer and tidings (seconds long).

Keeps ``python -m bench`` from rotting: it must start both servers, open a few hundred
WebSocket connections, deliver every notification exactly once and print its table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMOKE_CONNECTIONS = 300


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _check_sane(name: str, res: dict[str, Any]) -> None:
    assert "crashed" not in res, f"{name} crashed: {res['crashed']}"
    idle = res["idle"]
    assert idle["open"] == SMOKE_CONNECTIONS, f"{name}: {idle}"
    assert idle["bytes_per_connection"] > 0
    targeted = res["targeted"]
    assert targeted["accepted"] > 0 and not targeted["errors"], f"{name}: {targeted}"
    assert targeted["delivered"] == targeted["accepted"], f"{name}: {targeted}"
    assert targeted["lost"] == 0 and targeted["duplicated"] == 0, f"{name}: {targeted}"
    assert targeted["misrouted"] == 0, f"{name}: {targeted}"
    assert 0 < targeted["latency_ms"]["p50"] <= targeted["latency_ms"]["max"] < 5_000
    broadcast = res["broadcast"]
    assert broadcast["lost"] == 0 and broadcast["duplicated"] == 0, f"{name}: {broadcast}"
    assert broadcast["rate"] > 0 and broadcast["errors"] == 0, f"{name}: {broadcast}"
    assert res["create"]["rate"] > 0 and res["create"]["errors"] == 0, f"{name}: {res['create']}"


def test_bench_smoke_raw_and_tidings(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--targets",
            "raw,tidings",
            "--no-install",
            "--budget",
            "240",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    log = f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, log
    results = json.loads((out / "latest.json").read_text())["results"]
    for name in ("raw", "tidings"):
        if "unavailable" in results[name]:
            _skip_or_fail(f"{name} server could not start: {results[name]['unavailable']}")
    for name in ("raw", "tidings"):
        _check_sane(name, results[name])
    assert "targeted p99 (ms)" in proc.stdout and "tid/raw" in proc.stdout, log
    assert "sustained create" in proc.stdout, log
