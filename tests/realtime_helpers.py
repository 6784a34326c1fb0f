"""Helpers for the broker and realtime suites: private Redis servers, tidings server
processes, tokens, and waiting for things to happen. Everything is loopback only.

Services: the shared Redis is ``TIDINGS_TEST_REDIS_URL`` (default the local one);
tests that restart Redis start their own ``redis-server`` on a free port so the shared
one is never touched. Outside CI a missing service skips; under ``CI=true`` it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

REDIS_URL = os.environ.get("TIDINGS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SECRET = "realtime-test-secret-long-enough-for-hs256"
API_KEY = "realtime-test-key"
ROOT = Path(__file__).resolve().parent.parent
WS_TRANSPORTS = ["direct", "asgi"]
"""``TIDINGS_WS_TRANSPORT`` values: module-scoped ``server`` fixtures run the realtime
suites against each (the direct protocol class and the ASGI endpoint)."""


def transports(name: str) -> dict[str, str]:
    """``TIDINGS_WS_TRANSPORT`` and ``TIDINGS_SSE_TRANSPORT`` both set to ``name``: a
    suite run against each WebSocket transport runs its SSE tests against each SSE
    transport too, with no extra server."""
    return {"TIDINGS_WS_TRANSPORT": name, "TIDINGS_SSE_TRANSPORT": name}


def require(name: str, reason: str) -> None:
    """Skip outside CI; under CI=true a missing service is a failure."""
    if IN_CI:
        pytest.fail(f"{name} is required under CI=true: {reason}")
    pytest.skip(f"{name} unavailable: {reason}")


POSTGRES_ADMIN_URL = os.environ.get(
    "TIDINGS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


@contextlib.contextmanager
def throwaway_postgres(prefix: str) -> Iterator[str]:
    """A fresh database on the shared PostgreSQL (never stopped here), dropped afterwards.

    Yields its SQLAlchemy URL; skips outside CI (fails under CI) when unreachable.
    """
    import asyncpg

    admin = POSTGRES_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(run(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        require("PostgreSQL", f"{admin}: {exc}")
    try:
        yield f"{POSTGRES_ADMIN_URL.rpartition('/')[0]}/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def shared_redis_url() -> str:
    """The shared Redis, or skip (fail under CI) if it does not answer."""
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
        client.close()
    except (redis.RedisError, OSError) as exc:
        require("Redis", f"{REDIS_URL}: {exc}")
    return REDIS_URL


class RedisServer:
    """A private, throwaway ``redis-server`` that tests may stop and restart."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            require("redis-server", "binary not on PATH")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                require("redis-server", f"did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], within: float = 5.0, what: str = ""
) -> None:
    """Poll ``predicate`` until true; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


def token(user: str, *, roles: list[str] | None = None, topics: list[str] | None = None,
          ttl: float = 3600, secret: str = SECRET, locale: str | None = None,
          publish: list[str] | None = None) -> str:  # fmt: skip
    claims: dict[str, Any] = {"sub": user, "exp": int(time.time() + ttl)}
    if publish:
        claims["publish"] = publish
    if locale:
        claims["locale"] = locale
    if roles:
        claims["roles"] = roles
    if topics:
        claims["topics"] = topics
    return jwt.encode(claims, secret, algorithm="HS256")


class ServerProcess:
    """``python -m tidings serve`` on a free port, configured through the environment."""

    def __init__(self, workdir: Path, *, serve_args: tuple[str, ...] = (), **env: str) -> None:
        self.port = free_port()
        self.serve_args = serve_args or ("--log-level", "warning")
        self.workdir = workdir
        self.env = {
            "TIDINGS_HOST": "127.0.0.1",
            "TIDINGS_PORT": str(self.port),
            "TIDINGS_JWT_SECRET": SECRET,
            "TIDINGS_API_KEYS": API_KEY,
            "TIDINGS_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/tidings.db",
            "TIDINGS_SECRETS_FILE": str(workdir / "secrets.json"),
            "TIDINGS_CONFIG": str(workdir / "absent.toml"),
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"server-{self.port}.log"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 20) -> ServerProcess:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        env.setdefault("PYTHONPATH", str(ROOT / "src"))
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tidings", "serve", *self.serve_args],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)
        return self

    def terminate(self) -> None:
        """SIGTERM: a graceful shutdown."""
        if self.process is not None:
            self.process.terminate()

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


@contextlib.contextmanager
def server_pair(workdir: Path, **env: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two server processes with the same settings (one database, one broker), both
    stopped when the block ends, whichever failed to start."""
    first = ServerProcess(workdir, **env).start()
    second = ServerProcess(workdir, **env)
    try:
        yield first, second.start()
    finally:
        first.stop()
        second.stop()
