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


def _run(module: str, *argv: str, timeout: float) -> tuple[subprocess.CompletedProcess[str], str]:
    """``python -m module argv`` from the repository; the process and its output's tail."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"


def test_bench_smoke_raw_and_tidings(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc, log = _run(
        "bench", "--smoke", "--targets", "raw,tidings", "--no-install", "--budget", "240",
        "--out", str(out), timeout=420,
    )  # fmt: skip
    assert proc.returncode == 0, log
    results = json.loads((out / "latest.json").read_text())["results"]
    for name in ("raw", "tidings"):
        if "unavailable" in results[name]:
            _skip_or_fail(f"{name} server could not start: {results[name]['unavailable']}")
    for name in ("raw", "tidings"):
        _check_sane(name, results[name])
    assert "targeted p99 (ms)" in proc.stdout and "tid/raw" in proc.stdout, log
    assert "sustained create" in proc.stdout, log


def test_bench_fifty_smoke(tmp_path: Path) -> None:
    """``python -m bench.fifty`` at a few hundred connections: workers, generators, Redis."""
    out = tmp_path / "fifty.json"
    proc, log = _run(
        "bench.fifty", "--connections", "400", "--workers", "2", "--generators", "2",
        "--rate", "100", "--seconds", "2", "--budget", "60", "--out", str(out), timeout=240,
    )  # fmt: skip
    if not out.exists() and "redis-server" in proc.stderr:
        _skip_or_fail(f"bench.fifty needs redis-server: {log}")
    run = json.loads(out.read_text())
    assert run["connect"]["open"] == 400, log
    targeted = run["targeted"]
    assert targeted["accepted"] == targeted["delivered"] > 0, log
    assert targeted["lost"] == 0 and targeted["duplicated"] == 0, log
    assert run["broadcast"]["delivered"] == 400, log
    assert "total server memory at 400 connections" in proc.stdout, log


def test_the_connect_target_is_the_embedded_servers_and_the_others_show_their_figure() -> None:
    from bench import report

    def measured(cpu_us: float) -> dict[str, Any]:
        return {"idle": {"open": 10_000, "cpu_us": cpu_us, "bytes_per_connection": 6_000}}

    checks = {
        desc: (ok, detail)
        for desc, ok, detail in report.checks(
            {"tidings": measured(400), "tidings-scaled": measured(900)}, True
        )
    }
    assert checks["[tidings] connect server CPU <= 600 us per connection"] == (True, "400 us")
    ok, detail = checks["[tidings-scaled] connect server CPU"]
    assert ok is None and detail.startswith("900 us; no target")
