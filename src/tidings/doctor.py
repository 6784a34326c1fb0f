"""``tidings doctor``: check a deployment's configuration and say what to fix.

Each check answers ``ok``, ``warn`` or ``fail`` with a detail and, unless ok, the fix.
Checks: configuration (settings that cannot work together), the database (reachable,
schema at the newest migration), the broker (reachable), the secrets file's mode, and
the clock against the database's and Redis's (ids carry this host's time).
Nothing is changed: no secrets generated, no migration applied.
"""

from __future__ import annotations

import stat
import time
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from tidings.redaction import redact
from tidings.settings import Settings
from tidings.store.engine import create_engines
from tidings.store.migrate import MIGRATIONS

MAX_SKEW = 1.0
"""Seconds of clock difference worth a warning."""


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # ok, warn, fail
    detail: str
    fix: str = ""


def configuration(settings: Settings) -> list[Check]:
    found: list[Check] = []
    many = settings.workers > 1
    if many and settings.broker_url.startswith("memory"):
        found.append(
            Check(
                "configuration",
                "fail",
                "several workers with the memory broker",
                "set TIDINGS_BROKER_URL=redis://... or TIDINGS_WORKERS=1",
            )
        )
    if many and settings.is_sqlite:
        found.append(
            Check(
                "configuration",
                "warn",
                "several workers on one SQLite file",
                "use PostgreSQL (TIDINGS_DATABASE_URL=postgresql+asyncpg://...)",
            )
        )
    if not settings.api_keys:
        found.append(
            Check(
                "configuration",
                "warn",
                "no TIDINGS_API_KEYS: one is generated",
                "set TIDINGS_API_KEYS for production",
            )
        )
    if not settings.jwt_secret and not settings.jwt_public_key:
        found.append(
            Check(
                "configuration",
                "warn",
                "no JWT secret or public key: one is generated",
                "set TIDINGS_JWT_SECRET or TIDINGS_JWT_PUBLIC_KEY",
            )
        )
    if settings.dev:
        found.append(
            Check(
                "configuration",
                "warn",
                "development mode is on (demo page, dev tokens)",
                "unset TIDINGS_DEV in production",
            )
        )
    if "*" in settings.allowed_origins:
        found.append(
            Check(
                "configuration",
                "warn",
                "any origin may open streams",
                "list your sites in TIDINGS_ALLOWED_ORIGINS",
            )
        )
    if not found:
        found.append(Check("configuration", "ok", f"{settings.workers} worker(s)"))
    return found


def secrets_file(settings: Settings) -> Check:
    path = Path(settings.secrets_file)
    if not path.exists():
        return Check("secrets file", "ok", f"{path} absent (secrets configured or not yet made)")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return Check(
            "secrets file",
            "fail",
            f"{path} has mode {mode:04o}: others can read it",
            f"chmod 600 {path} (and rotate the secrets)",
        )
    return Check("secrets file", "ok", f"{path} mode {mode:04o}")


def _skew(name: str, remote: float, local: float, leeway: int) -> Check:
    skew = remote - local
    detail = f"{name} clock {skew:+.3f} s from this host"
    if abs(skew) > max(MAX_SKEW, leeway):
        return Check("clock", "fail", detail, "run NTP (chrony, systemd-timesyncd) everywhere")
    if abs(skew) > MAX_SKEW:
        return Check("clock", "warn", detail, "run NTP (chrony, systemd-timesyncd) everywhere")
    return Check("clock", "ok", detail)


async def database(settings: Settings) -> list[Check]:
    shown = redact(settings.database_url)
    _, engine = create_engines(settings.database_url)
    try:
        async with engine.connect() as conn:
            before = time.time()
            now = None
            if not settings.is_sqlite:
                now = float(
                    (await conn.execute(text("SELECT extract(epoch from now())"))).scalar_one()
                )
            after = time.time()
            current = await conn.run_sync(_revision)
    except (SQLAlchemyError, OSError) as exc:
        reason = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return [
            Check(
                "database",
                "fail",
                f"{shown}: {reason}",
                "check TIDINGS_DATABASE_URL and that the database is up",
            )
        ]
    finally:
        await engine.dispose()
    head = ScriptDirectory.from_config(_alembic()).get_current_head()
    found = []
    if current != head:
        found.append(
            Check(
                "database",
                "warn",
                f"{shown}: schema at {current}, newest {head}",
                "run `tidings migrate` (serve does it on start)",
            )
        )
    else:
        found.append(Check("database", "ok", f"{shown}: schema at {head}"))
    if now is not None:
        found.append(_skew("database", now, (before + after) / 2, settings.jwt_leeway))
    return found


def _alembic() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _revision(connection: object) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()  # type: ignore[arg-type]


async def broker(settings: Settings) -> list[Check]:
    shown = redact(settings.broker_url)
    if settings.broker_url.startswith("memory"):
        return [Check("broker", "ok", f"{shown} (one process)")]
    client = Redis.from_url(settings.broker_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        before = time.time()
        seconds, micros = await client.time()
        after = time.time()
    except (RedisError, OSError) as exc:
        return [
            Check(
                "broker",
                "fail",
                f"{shown}: {redact(str(exc))}",
                "check TIDINGS_BROKER_URL and that Redis is up",
            )
        ]
    finally:
        await client.aclose()
    remote = seconds + micros / 1_000_000
    return [
        Check("broker", "ok", f"{shown} answers"),
        _skew("Redis", remote, (before + after) / 2, settings.jwt_leeway),
    ]


async def run(settings: Settings) -> list[Check]:
    return [
        *configuration(settings),
        secrets_file(settings),
        *await database(settings),
        *await broker(settings),
    ]


def report(checks: list[Check]) -> str:
    lines = []
    for check in checks:
        lines.append(f"{check.status:<5} {check.name:<14} {check.detail}")
        if check.fix:
            lines.append(f"{'':<20} fix: {check.fix}")
    return "\n".join(lines)
