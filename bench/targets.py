"""The systems under test: how to start each one and where its endpoints are."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import Server, TargetUnavailable, free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
API_KEY = "bench-key"
HOST = "127.0.0.1"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_HOST = "redis://127.0.0.1:6379"
TIDINGS_SRC: Path | None = None
"""Where the tidings package is imported from; None: the working tree (editable install)."""


def use_tidings_revision(rev: str) -> str:
    """Export ``src/`` at git revision ``rev`` and run tidings servers from it.

    Shields a run from half-finished edits in a checkout shared with other people.
    Returns the full commit id.
    """
    global TIDINGS_SRC
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", rev], check=True, capture_output=True, text=True
    ).stdout.strip()
    dest = Path(tempfile.gettempdir()) / "tidings-bench-src" / sha[:12]
    if not (dest / "src" / "tidings").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", sha, "src"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    TIDINGS_SRC = dest / "src"
    return sha


@dataclass
class Target:
    """A started system: its HTTP/WS endpoints and its server processes."""

    name: str
    label: str
    workdir: Path
    endpoints: list[tuple[str, int]] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)

    def pids(self) -> list[int]:
        return [s.pid for s in self.servers if s.alive()]

    def alive(self) -> bool:
        return all(s.alive() for s in self.servers)

    async def start(self) -> None:
        raise NotImplementedError

    async def _start_servers(self, argvs: list[list[str]], env: dict[str, str]) -> None:
        for i, argv in enumerate(argvs):
            port = self.endpoints[i][1]
            server = Server(f"{self.name}#{i}", argv, env, self.workdir / f"server{i}.log", ROOT)
            self.servers.append(server)
            await server.start(HOST, port)

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.servers))

    def logs(self) -> str:
        return "\n".join(f"--- {s.name}\n{s.tail()}" for s in self.servers)


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "TIDINGS_JWT_SECRET": SECRET,
            "TIDINGS_API_KEYS": API_KEY,
            "TIDINGS_ALLOWED_ORIGINS": "*",
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
        }
    )
    return env


class RawTarget(Target):
    async def start(self) -> None:
        port = free_port()
        self.endpoints = [(HOST, port)]
        argv = [sys.executable, "-m", "bench.peers.raw", "--host", HOST, "--port", str(port)]
        await self._start_servers([argv], base_env())


async def flush_redis(url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


class PrivateRedis:
    """A throw-away redis-server on a free port, so the run never touches the shared
    Redis (pub/sub channels are global across its databases). Falls back to the shared
    server's database ``fallback_db`` (flushed) when redis-server is not installed."""

    def __init__(self, workdir: Path, fallback_db: int) -> None:
        self.workdir, self.fallback_db = workdir, fallback_db
        self.proc: asyncio.subprocess.Process | None = None
        self.url = f"{REDIS_HOST}/{fallback_db}"

    async def start(self) -> str:
        exe = shutil.which("redis-server")
        if exe is None:
            await flush_redis(self.url)
            return self.url
        port = free_port()
        self.proc = await asyncio.create_subprocess_exec(
            exe,
            "--port",
            str(port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        self.url = f"redis://{HOST}:{port}/0"
        for _ in range(100):
            with contextlib.suppress(Exception):
                await flush_redis(self.url)
                return self.url
            await asyncio.sleep(0.1)
        raise TargetUnavailable("private redis-server did not start")

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None and self.proc.returncode is None else []

    async def stop(self) -> None:
        if self.proc is None:
            with contextlib.suppress(Exception):
                await flush_redis(self.url)
            return
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


class ChannelsTarget(Target):
    """daphne + the Channels peer; its private Redis counts as part of the server."""

    def __init__(self, name: str, label: str, workdir: Path) -> None:
        super().__init__(name, label, workdir)
        self.redis = PrivateRedis(workdir, fallback_db=7)

    def pids(self) -> list[int]:
        return super().pids() + self.redis.pids()

    async def start(self) -> None:
        if shutil.which("daphne", path=str(BIN)) is None:
            raise TargetUnavailable("daphne missing: pip install -r bench/requirements.txt")
        redis_url = await self.redis.start()
        port = free_port()
        self.endpoints = [(HOST, port)]
        env = base_env()
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "bench.peers.channels.settings",
                "BENCH_CHANNELS_DB": str(self.workdir / "channels.sqlite3"),
                "BENCH_CHANNELS_REDIS": redis_url,
            }
        )
        migrate = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "django",
            "migrate",
            "--run-syncdb",
            "-v",
            "0",
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await migrate.communicate()
        if migrate.returncode != 0:
            raise TargetUnavailable(f"channels migrate failed: {out.decode()[-800:]}")
        argv = [
            str(BIN / "daphne"),
            "-b",
            HOST,
            "-p",
            str(port),
            "--verbosity",
            "0",
            "bench.peers.channels.asgi:application",
        ]
        await self._start_servers([argv], env)

    async def stop(self) -> None:
        await super().stop()
        await self.redis.stop()


class TidingsTarget(Target):
    """``tidings serve``: embedded (SQLite + memory) or scaled (PostgreSQL + Redis, 2 procs)."""

    def __init__(
        self,
        name: str,
        label: str,
        workdir: Path,
        scaled: bool = False,
        processes: int = 2,
        workers: int = 1,
        extra_env: dict[str, str] | None = None,
        sqlite: bool = False,
    ) -> None:
        super().__init__(name, label, workdir)
        self.scaled = scaled
        self.workers = workers
        self.extra_env = extra_env or {}
        self.sqlite = sqlite  # scaled on one SQLite file (several workers share it)
        self.processes = processes if scaled else 1
        self.redis = PrivateRedis(workdir, fallback_db=6)
        self.pg_db = f"tidings_bench_{os.getpid()}"

    def pids(self) -> list[int]:
        return super().pids() + (self.redis.pids() if self.scaled else [])

    async def start(self) -> None:
        exe = BIN / "tidings"
        if not exe.exists():
            raise TargetUnavailable(f"{exe} not found (pip install -e . in the venv)")
        env = base_env()
        if TIDINGS_SRC is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(TIDINGS_SRC), env["PYTHONPATH"]])
        env.update(
            {
                "TIDINGS_MAX_CONNECTIONS_PER_USER": "50",
                "TIDINGS_OUTBOX_SIZE": "10000",
                "TIDINGS_SECRETS_FILE": str(self.workdir / "secrets.json"),
                "TIDINGS_DEV": "false",
                **self.extra_env,
            }
        )
        if self.scaled and self.sqlite:
            db = self.workdir / "tidings.db"
            remove_files([Path(f"{db}{suffix}") for suffix in ("", "-wal", "-shm")])
            env["TIDINGS_DATABASE_URL"] = f"sqlite+aiosqlite:///{db}"
            env["TIDINGS_BROKER_URL"] = await self.redis.start()
        elif self.scaled:
            await self._create_pg()
            env["TIDINGS_DATABASE_URL"] = (
                f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.pg_db}"
            )
            env["TIDINGS_BROKER_URL"] = await self.redis.start()
        else:
            db = self.workdir / "tidings.db"
            remove_files([Path(f"{db}{suffix}") for suffix in ("", "-wal", "-shm")])
            env["TIDINGS_DATABASE_URL"] = f"sqlite+aiosqlite:///{db}"
            env["TIDINGS_BROKER_URL"] = "memory://"
        self.endpoints = [(HOST, free_port()) for _ in range(self.processes)]
        argvs = [
            [
                str(exe),
                "serve",
                "--host",
                HOST,
                "--port",
                str(p),
                "--log-level",
                "warning",
                "--workers",
                str(self.workers),
            ]
            for _, p in self.endpoints
        ]
        await self._start_servers(argvs, env)

    async def _create_pg(self) -> None:
        import asyncpg

        try:
            conn = await asyncpg.connect(PG_ADMIN, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            raise TargetUnavailable(f"PostgreSQL unavailable: {exc}") from exc
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_db}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{self.pg_db}"')
        finally:
            await conn.close()

    async def stop(self) -> None:
        await super().stop()
        if self.scaled and self.sqlite:
            await self.redis.stop()
        elif self.scaled:
            import asyncpg

            with contextlib.suppress(Exception):
                conn = await asyncpg.connect(PG_ADMIN, timeout=5)
                try:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_db}" WITH (FORCE)')
                finally:
                    await conn.close()
            await self.redis.stop()


def remove_files(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def make_target(name: str, workdir: Path) -> Target:
    """Build a target by name: raw, channels, tidings, tidings-scaled."""
    wd = workdir / name
    wd.mkdir(parents=True, exist_ok=True)
    if name == "raw":
        return RawTarget(name, "raw ceiling (uvloop)", wd)
    if name == "channels":
        return ChannelsTarget(name, "Django Channels + channels-redis (daphne)", wd)
    if name == "tidings":
        return TidingsTarget(name, "tidings embedded (SQLite + memory, 1 proc)", wd)
    if name == "tidings-pg":  # not in the default run: one process on PostgreSQL
        return TidingsTarget(
            name, "tidings on PostgreSQL + Redis, 1 proc", wd, scaled=True, processes=1
        )
    if name == "tidings-scaled":
        return TidingsTarget(name, "tidings scaled (PostgreSQL + Redis, 2 procs)", wd, scaled=True)
    raise ValueError(f"unknown target {name!r}")


ALL_TARGETS = ["raw", "channels", "tidings", "tidings-scaled"]
EXTRA_TARGETS = ["tidings-pg"]
"""Available with ``--targets`` but not run by default."""
