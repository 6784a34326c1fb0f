"""The ``tidings`` command: serve, token, send, migrate."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

import httpx

from tidings import __version__
from tidings.auth import Authenticator
from tidings.credentials import Bootstrapped, ensure_secrets
from tidings.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tidings", description="Real-time notification server.")
    parser.add_argument("--version", action="version", version=f"tidings {__version__}")
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to bind (TIDINGS_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (TIDINGS_PORT, default 8000)")
    serve.add_argument("--workers", type=int, help="processes; >1 needs a Redis broker")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(run=_serve)

    token = commands.add_parser("token", help="print a development JWT for a user")
    token.add_argument("--user", required=True)
    token.add_argument("--roles", default="", help="comma-separated roles")
    token.add_argument("--topics", default="", help="comma-separated topic patterns")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    token.set_defaults(run=_token)

    send = commands.add_parser("send", help="create a notification through a running server")
    send.add_argument(
        "--to", action="append", required=True, help="user:U, role:R or all (repeatable)"
    )
    send.add_argument("--title", required=True)
    send.add_argument("--body", default="")
    send.add_argument("--type", default="notification")
    send.add_argument("--level", default="info", choices=["info", "success", "warning", "error"])
    send.add_argument("--url", help="server URL (default TIDINGS_PUBLIC_URL or host:port)")
    send.set_defaults(run=_send)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(run=_migrate)
    return parser


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    for name in ("host", "port", "workers"):
        value = getattr(args, name)
        if value is not None:  # workers read settings from the environment
            os.environ[f"TIDINGS_{name.upper()}"] = str(value)
    boot = ensure_secrets(Settings())
    settings = boot.settings
    if settings.workers > 1 and settings.broker_url.startswith("memory"):
        print(
            "tidings: --workers > 1 needs a shared broker: set TIDINGS_BROKER_URL=redis://...\n"
            "(the in-memory broker cannot reach clients connected to other processes)",
            file=sys.stderr,
        )
        return 2
    _run_migrations(settings)
    os.environ["TIDINGS_SKIP_MIGRATE"] = "1"
    _banner(boot)
    uvicorn.run(
        "tidings.web:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=None,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace)),
        log_level=args.log_level,
        access_log=False,
    )
    return 0


def _banner(boot: Bootstrapped) -> None:
    settings = boot.settings
    base = _base_url(settings)
    lines = [f"tidings {__version__} on {base}", f"  API docs:   {base}/docs"]
    if settings.dev:
        lines.append(f"  demo page:  {base}/demo")
    lines.append(f"  database:   {_redact(settings.database_url)}")
    lines.append(f"  broker:     {_redact(settings.broker_url)}")
    if boot.generated_api_key:
        lines.append(f"  API key:    {settings.api_keys[0]}   (kept in {settings.secrets_file})")
    if settings.jwt_secret:
        lines.append("  dev token:  tidings token --user alice")
    print("\n".join(lines), flush=True)


def _redact(url: str) -> str:
    """Hide a password in a URL: explicitly configured secrets are never printed."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if ":" in credentials else url


def _base_url(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def _run_migrations(settings: Settings) -> None:
    from tidings.store.engine import create_engines
    from tidings.store.migrate import upgrade

    async def run() -> None:
        _, writer = create_engines(settings.database_url)
        try:
            await upgrade(writer)
        finally:
            await writer.dispose()

    asyncio.run(run())


def _migrate(_: argparse.Namespace) -> int:
    _run_migrations(Settings())
    print("database is at the newest schema")
    return 0


def _token(args: argparse.Namespace) -> int:
    settings = ensure_secrets(Settings()).settings
    if not settings.jwt_secret:
        print("tidings: minting tokens needs TIDINGS_JWT_SECRET (HS256)", file=sys.stderr)
        return 2
    auth = Authenticator.from_settings(settings)
    print(auth.mint(args.user, roles=_split(args.roles), topics=_split(args.topics), ttl=args.ttl))
    return 0


def _send(args: argparse.Namespace) -> int:
    settings = ensure_secrets(Settings()).settings
    try:
        audience = _audience(args.to)
    except ValueError as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        return 2
    body = {
        "to": audience,
        "title": args.title,
        "body": args.body,
        "type": args.type,
        "level": args.level,
    }
    url = (args.url or _base_url(settings)).rstrip("/") + "/api/v1/notifications"
    headers = {"Authorization": f"Bearer {settings.api_keys[0]}"}
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        print(f"tidings: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    print(response.text)
    return 0 if response.is_success else 1


def _audience(targets: list[str]) -> dict[str, Any]:
    users, roles = [], []
    for target in targets:
        kind, _, name = target.partition(":")
        if kind == "all" and not name:
            return {"all": True}
        if kind == "user" and name:
            users.append(name)
        elif kind == "role" and name:
            roles.append(name)
        else:
            raise ValueError(f"--to {target!r}: expected user:U, role:R or all")
    return {"users": users, "roles": roles}


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


if __name__ == "__main__":
    sys.exit(main())
