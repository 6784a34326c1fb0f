"""The ``tidings`` command: serve, token, send, migrate, templates."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from tidings import __version__
from tidings.auth import Authenticator
from tidings.credentials import Bootstrapped, ensure_secrets
from tidings.logs import log_config
from tidings.redaction import redact
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
    except ValidationError as exc:
        print(f"tidings: invalid configuration\n{_config_errors(exc)}", file=sys.stderr)
        return 2


def _config_errors(exc: ValidationError) -> str:
    """One line per refused setting, named as its environment variable, secrets redacted."""
    lines = []
    for error in exc.errors():
        name = "TIDINGS_" + "_".join(str(part) for part in error["loc"]).upper()
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {name}: {redact(message)}" if error["loc"] else f"  {redact(message)}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tidings", description="Real-time notification server.")
    parser.add_argument("--version", action="version", version=f"tidings {__version__}")
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to bind (TIDINGS_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (TIDINGS_PORT, default 8000)")
    serve.add_argument("--workers", type=int, help="processes; >1 needs a Redis broker")
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--access-log", action="store_true", help="log every request (secrets redacted)"
    )
    serve.set_defaults(run=_serve)

    token = commands.add_parser("token", help="print a development JWT for a user")
    token.add_argument("--user", required=True)
    token.add_argument("--roles", default="", help="comma-separated roles")
    token.add_argument("--topics", default="", help="comma-separated topic patterns")
    token.add_argument(
        "--publish", default="", help="comma-separated topic patterns the user may publish to"
    )
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
    send.add_argument("--port", type=int, help="port of a server on this host (TIDINGS_PORT)")
    send.set_defaults(run=_send)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(run=_migrate)

    templates = commands.add_parser("templates", help="event templates of a running server")
    which = templates.add_subparsers(title="templates commands")
    push = which.add_parser("push", help="create or replace the templates of a TOML/YAML file")
    push.add_argument("file", help="event types to templates (see the README)")
    listing = which.add_parser("list", help="the server's templates")
    for sub, run in ((push, _templates_push), (listing, _templates_list)):
        sub.add_argument("--url", help="server URL (default TIDINGS_PUBLIC_URL or host:port)")
        sub.add_argument("--port", type=int, help="port of a server on this host (TIDINGS_PORT)")
        sub.set_defaults(run=run)

    doctor = commands.add_parser(
        "doctor", help="check configuration, database, broker, secrets and clocks"
    )
    doctor.set_defaults(run=_doctor)
    return parser


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from tidings.web import httpserver, wsprotocol, wsserver

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
    if settings.workers > 1:
        _share_metrics()
    _banner(boot)
    uvicorn.run(
        "tidings.web:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http=httpserver.PROTOCOL,  # httptools, answering unparsable requests in JSON
        ws=wsserver.IMPORT_PATH if settings.ws_transport == "direct" else wsprotocol.IMPORT_PATH,
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=False,  # see docs/DESIGN.md, "Compression"
        ws_ping_interval=None,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace)),
        # uvicorn restarts a worker that misses 5 s of health checks, dropping all of its
        # connections; a worker holding 12,000 of them on a busy 2-core host was (bench.fifty).
        timeout_worker_healthcheck=30,
        log_level=args.log_level,
        log_config=log_config(settings.log_format, args.log_level),
        access_log=args.access_log,
    )
    return 0


def _share_metrics() -> None:
    """Workers write their metrics to one directory that ``/metrics`` sums (multiprocess).

    Set before any worker imports prometheus-client. Ours is fresh and removed on exit;
    an operator's ``PROMETHEUS_MULTIPROC_DIR`` is used as given (wipe it between runs).
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    directory = tempfile.mkdtemp(prefix="tidings-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    atexit.register(shutil.rmtree, directory, ignore_errors=True)


def _banner(boot: Bootstrapped) -> None:
    settings = boot.settings
    base = _base_url(settings)
    lines = [f"tidings {__version__} on {base}", f"  API docs:   {base}/docs"]
    if settings.dev:
        lines.append(f"  demo page:  {base}/demo")
    lines.append(f"  database:   {redact(settings.database_url)}")
    lines.append(f"  broker:     {redact(settings.broker_url)}")
    if boot.generated_api_key:
        lines.append(f"  API key:    {settings.api_keys[0]}   (kept in {settings.secrets_file})")
    if settings.jwt_secret:
        lines.append("  dev token:  tidings token --user alice")
    print("\n".join(lines), flush=True)


def _base_url(settings: Settings, *, port: int | None = None) -> str:
    """Where this host reaches the server: ``TIDINGS_PUBLIC_URL``, else host and port.

    An explicit ``port`` (``--port``) names a server on this host and wins over both.
    """
    if settings.public_url and port is None:
        return settings.public_url.rstrip("/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port if port is None else port}"


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


def _doctor(_: argparse.Namespace) -> int:
    from tidings import doctor

    try:
        settings = Settings()
    except ValueError as exc:
        print(f"fail  configuration  {redact(str(exc))}", file=sys.stdout)
        return 1
    checks = asyncio.run(doctor.run(settings))
    print(doctor.report(checks))
    return 1 if any(check.status == "fail" for check in checks) else 0


def _token(args: argparse.Namespace) -> int:
    settings = ensure_secrets(Settings()).settings
    if not settings.jwt_secret:
        print("tidings: minting tokens needs TIDINGS_JWT_SECRET (HS256)", file=sys.stderr)
        return 2
    auth = Authenticator.from_settings(settings)
    print(
        auth.mint(
            args.user,
            roles=_split(args.roles),
            topics=_split(args.topics),
            publish=_split(args.publish),
            ttl=args.ttl,
        )
    )
    return 0


def _send(args: argparse.Namespace) -> int:
    try:
        audience = _audience(args.to)
    except ValueError as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        return 2
    settings = ensure_secrets(Settings()).settings
    body = {
        "to": audience,
        "title": args.title,
        "body": args.body,
        "type": args.type,
        "level": args.level,
    }
    base = args.url or _base_url(settings, port=args.port)
    url = base.rstrip("/") + "/api/v1/notifications"
    headers = {"Authorization": f"Bearer {settings.api_keys[0]}"}
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        print(f"tidings: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    print(response.text)
    return 0 if response.is_success else 1


def _templates_push(args: argparse.Namespace) -> int:
    from tidings import cli_templates

    settings = ensure_secrets(Settings()).settings
    base = args.url or _base_url(settings, port=args.port)
    return cli_templates.push(base.rstrip("/"), settings.api_keys[0], Path(args.file))


def _templates_list(args: argparse.Namespace) -> int:
    from tidings import cli_templates

    settings = ensure_secrets(Settings()).settings
    base = args.url or _base_url(settings, port=args.port)
    return cli_templates.show(base.rstrip("/"), settings.api_keys[0])


def _audience(targets: list[str]) -> dict[str, Any]:
    """``--to`` values as the API's ``to``; ``all`` stands alone (nothing is dropped)."""
    if "all" in targets:
        if len(targets) > 1:
            others = " ".join(f"--to {t}" for t in targets if t != "all")
            raise ValueError(f"--to all already reaches everyone: drop {others} or --to all")
        return {"all": True}
    users, roles = [], []
    for target in targets:
        kind, _, name = target.partition(":")
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
