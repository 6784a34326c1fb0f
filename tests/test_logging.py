"""Secrets never reach output: request lines in the server's log, the start-up banner.

One rule (:func:`tidings.redaction.redact`) hides URL passwords and the values of query
parameters named like secrets; the server installs it on uvicorn's request loggers.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
import websockets
from realtime_helpers import SECRET, ServerProcess, token
from uvicorn.logging import AccessFormatter

from tidings.cli import _banner
from tidings.credentials import Bootstrapped
from tidings.redaction import RedactSecrets, redact
from tidings.settings import Settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql+asyncpg://app:hunter2@db/x", "postgresql+asyncpg://app:***@db/x"),
        ("postgresql+asyncpg://app:p@ss:w#rd@db:5432/x", "postgresql+asyncpg://app:***@db:5432/x"),
        ("postgresql+asyncpg://app@db/x?password=hunter2&ssl=on",
         "postgresql+asyncpg://app@db/x?password=***&ssl=on"),
        ("redis://:hunter2@cache:6379/1", "redis://:***@cache:6379/1"),
        ('1.2.3.4:5 - "WebSocket /ws?token=eyJ.x.y&after=01a" [accepted]',
         '1.2.3.4:5 - "WebSocket /ws?token=***&after=01a" [accepted]'),
        ("/x?Access_Token=a&api_key=b&key=c&secret=d&sslpassword=e&topics=f",
         "/x?Access_Token=***&api_key=***&key=***&secret=***&sslpassword=***&topics=f"),
    ],
)  # fmt: skip
def test_redact_hides_url_passwords_and_secret_parameters(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    ["redis://127.0.0.1:6379/0", "sqlite+aiosqlite:///./tidings.db", "/ws?after=01a&topics=a",
     "http://host:8000/p?next=a@b", "redis://user@cache/0"],
)  # fmt: skip
def test_redact_leaves_everything_else_alone(text: str) -> None:
    assert redact(text) == text


def test_the_filter_keeps_uvicorns_access_record_shape() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/api/v1/me/stream?token=eyJ.x.y", "1.1", 200), None,
    )  # fmt: skip
    assert RedactSecrets().filter(record)
    line = AccessFormatter("%(message)s", use_colors=False).format(record)
    assert line == '127.0.0.1:5000 - "GET /api/v1/me/stream?token=*** HTTP/1.1" 200'


def test_the_banner_never_prints_configured_passwords(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://app:hunter2@db/tidings?password=hunter3",
        broker_url="redis://:hunter4@cache:6379/0",
        jwt_secret=SECRET,
        api_keys=["configured-key"],
        dev=False,
    )
    _banner(Bootstrapped(settings, generated_secret=False, generated_api_key=False))
    out = capsys.readouterr().out
    assert "database:   postgresql+asyncpg://app:***@db/tidings?password=***" in out
    assert "broker:     redis://:***@cache:6379/0" in out
    for secret in ("hunter2", "hunter3", "hunter4", SECRET, "configured-key"):
        assert secret not in out


async def test_tokens_in_query_strings_never_reach_the_server_log(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, serve_args=("--log-level", "info", "--access-log")).start()
    accepted, refused = token("alice"), token("alice", secret="x" * 40)
    try:
        async with websockets.connect(f"{server.ws}?token={accepted}") as ws:
            assert '"welcome"' in await asyncio.wait_for(ws.recv(), 5)
        async with websockets.connect(f"{server.ws}?token={refused}") as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 4001
        async with httpx.AsyncClient(base_url=server.http, timeout=5) as http:
            url = f"/api/v1/me/stream?token={accepted}"
            async with http.stream("GET", url) as stream:
                assert stream.status_code == 200
                async for line in stream.aiter_lines():
                    if "welcome" in line:
                        break
            assert (await http.get("/healthz?api_key=k-123456")).status_code == 200
    finally:
        server.stop()
    log = server.log.read_text()
    assert "WebSocket /ws?token=***" in log  # the handshake lines are there, redacted
    assert "GET /api/v1/me/stream?token=***" in log
    assert "GET /healthz?api_key=***" in log
    for secret in (accepted, refused, "k-123456"):
        assert secret not in log
