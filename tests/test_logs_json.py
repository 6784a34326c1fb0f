"""Structured logs: ``TIDINGS_LOG_FORMAT=json`` writes one JSON object per line, starts
with a line naming the database, broker and limits in force, and a whole run's output
holds neither tokens nor API keys."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import orjson
import websockets
from realtime_helpers import API_KEY, SECRET, ServerProcess, token

from tidings.logs import JsonFormatter


def test_records_carry_their_ids_and_no_secrets() -> None:
    record = logging.LogRecord(
        "tidings.realtime", logging.WARNING, __file__, 1, "GET %s", ("/ws?token=eyJ.a.b",), None
    )
    record.connection = "c0ffee"
    record.notification = "01a1fcb37be50003"
    line = orjson.loads(JsonFormatter().format(record))
    assert line["message"] == "GET /ws?token=***"
    assert line["level"] == "warning"
    assert line["connection"] == "c0ffee"
    assert line["notification"] == "01a1fcb37be50003"
    assert line["ts"].endswith("Z")


async def test_a_json_run_starts_with_what_is_in_force_and_leaks_nothing(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path,
        serve_args=("--log-level", "debug", "--access-log"),
        TIDINGS_LOG_FORMAT="json",
        TIDINGS_CREATE_RATE="50",
    ).start()
    user_token = token("alice")
    try:
        async with websockets.connect(f"{server.ws}?token={user_token}") as ws:
            await ws.recv()
            async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
                headers = {"Authorization": f"Bearer {API_KEY}"}
                body = {"to": {"users": ["alice"]}, "title": "hi"}
                assert (
                    await http.post("/api/v1/notifications", json=body, headers=headers)
                ).status_code == 201
                await http.get(f"/api/v1/me/stream?token={user_token}&after=zz")
            await ws.recv()
    finally:
        server.stop()
    output = server.log.read_text()
    records = [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]
    [started] = [r for r in records if r["message"].startswith("started:")]
    assert started["database"].startswith("sqlite+aiosqlite:///")
    assert started["broker"] == "memory://"
    assert started["limits"]["create_rate"] == 50
    assert any(r.get("connection") for r in records)  # connection ids where they apply
    assert any(r["logger"] == "uvicorn.access" for r in records)
    for secret in (user_token, API_KEY, SECRET):
        assert secret not in output
