"""The ASGI application: HTTP API, realtime endpoints, docs, health and static files."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Scope

from tidings import __version__, telemetry
from tidings.app import App
from tidings.credentials import ensure_secrets
from tidings.errors import CloseCode
from tidings.redaction import redact_server_logs
from tidings.settings import Settings
from tidings.web import (
    api,
    changes_api,
    cors,
    dev,
    errors,
    events_api,
    inbox_api,
    metrics,
    ops,
    preferences_api,
    realtime,
    rooms_api,
)
from tidings.web.fastpath import CreateFastPath
from tidings.web.httpmetrics import CountRequests
from tidings.web.responses import JSONResponse
from tidings.web.wsdirect import ExposeRawSend

STATIC = Path(__file__).parent / "static"

DESCRIPTION = """Real-time notifications: persisted inboxes pushed live over WebSocket
(`/ws`) and Server-Sent Events (`/api/v1/me/stream`). Backends authenticate with an API
key, end users with a JWT; both as `Authorization: Bearer ...`."""


class CachedStatic(StaticFiles):
    """Static files with a short public cache; ETag revalidation does the rest.

    Files in ``hidden`` are not served under any spelling of their path (the demo page
    outside development mode): they are matched by identity, not by name.
    """

    def __init__(self, *, hidden: tuple[Path, ...] = (), **options: Any) -> None:
        super().__init__(**options)
        self._hidden = {_identity(os.stat(path)) for path in hidden if path.exists()}

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        full_path, found = super().lookup_path(path)
        if found is not None and _identity(found) in self._hidden:
            return "", None
        return full_path, found

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "public, max-age=300, must-revalidate")
        return response


def _identity(found: os.stat_result) -> tuple[int, int]:
    return found.st_dev, found.st_ino


class TidingsAPI(FastAPI):
    """FastAPI with the create fast path (:mod:`tidings.web.fastpath`) in front of every
    layer, its own included.

    Starlette puts its error middleware, and FastAPI its telemetry and body-size ones,
    outside all the middleware an application adds. A create needs none of them: the
    fast path answers its own errors, a 500 included, and limits the body itself.
    """

    def build_middleware_stack(self) -> ASGIApp:
        return CreateFastPath(super().build_middleware_stack(), tidings=self.state.tidings)


def create_app(settings: Settings | None = None, *, migrate: bool | None = None) -> FastAPI:
    """Build the app. With no settings, read them from the environment (uvicorn factory)."""
    if settings is None:
        settings = ensure_secrets(Settings()).settings
    if migrate is None:
        migrate = os.environ.get("TIDINGS_SKIP_MIGRATE") != "1"
    # uvicorn logs each request line with its query string: `?token=` must not reach logs.
    redact_server_logs()
    tidings = App(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await tidings.start(migrate=migrate)
        tune_garbage_collector()
        restore = _close_streams_on_sigterm(tidings)
        try:
            yield
        finally:
            restore()
            await tidings.stop()
            telemetry.mark_process_dead()

    app = TidingsAPI(
        title="tidings",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.tidings = tidings
    errors.install(app)
    app.add_middleware(errors.BodyLimit, limit=settings.max_request_bytes)
    app.add_middleware(ExposeRawSend)
    app.add_middleware(CountRequests)
    cross_origin = cors.options(settings)
    if cross_origin is not None:
        # Browsers on those origins may call the end-user API and open SSE streams.
        app.add_middleware(cors.CrossOrigin, **cross_origin)
    app.include_router(inbox_api.router)  # before api: `archive-read` is not an id
    app.include_router(api.router)
    app.include_router(changes_api.router)
    app.include_router(events_api.router)
    app.include_router(ops.router)
    app.include_router(preferences_api.router)
    app.include_router(rooms_api.router)
    if settings.dev:
        app.include_router(dev.router)
    api.document(app, settings)
    realtime.register(app)
    metrics.register(app)
    _health(app, tidings)
    hidden = () if settings.dev else (dev.DEMO_PAGE,)
    static = CachedStatic(directory=STATIC, follow_symlink=True, hidden=hidden)
    app.mount("/static", static, name="static")
    return app


def tune_garbage_collector() -> None:
    """Keep full collections rare: with 10,000 connections each one pauses delivery.

    Measured in the benchmark's targeted run, full collections over ~3M live objects took
    25-42 ms, every one of them a latency spike. Objects alive after start-up (modules,
    routes, metadata) are frozen out of collection; young collections run less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def _close_streams_on_sigterm(tidings: App) -> Callable[[], None]:
    """On SIGTERM, tell every client to come back (1012) right away, then let the server stop.

    uvicorn closes WebSockets itself but runs the lifespan shutdown only after its grace
    period, so SSE streams would otherwise be cut without a word.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(tidings.hub.close_all, CloseCode.SERVICE_RESTART, "restarting")
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:  # nobody else handles it (e.g. embedded): terminate
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def _health(app: FastAPI, tidings: App) -> None:
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={503: {"description": "not ready: the same checks, one of them false"}},
    )
    async def readyz() -> Response:
        """Readiness: the database answers, the broker is connected and every background
        worker (feed, writer, sweeper, stats publisher) runs."""
        checks = await tidings.readiness()
        return JSONResponse(checks, status_code=200 if checks["ready"] else 503)
