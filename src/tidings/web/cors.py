"""Cross-origin requests: which browsers may call the end-user API and open streams.

One configuration, two users: the ASGI application's middleware, and the direct SSE
transport (:mod:`tidings.web.sseserver`), which answers without ASGI and adds the
headers this middleware would (:func:`simple_headers`, by Starlette's own rules).
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Message, Receive, Scope, Send

from tidings.settings import Settings


class CrossOrigin(CORSMiddleware):
    """CORS that stays out of the way of requests without an ``Origin`` (backends)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not any(name == b"origin" for name, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def options(settings: Settings) -> dict[str, Any] | None:
    """The middleware's options, or None when no other origin is allowed."""
    if not settings.allowed_origins:
        return None
    # Credentials travel as bearer tokens, never cookies, so no allow_credentials.
    return {
        "allow_origins": settings.allowed_origins,
        "allow_methods": ["GET", "POST", "PUT", "PATCH", "DELETE"],
        "allow_headers": ["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
        "expose_headers": ["Idempotent-Replayed"],
        "max_age": 600,
    }


def for_settings(settings: Settings) -> CrossOrigin | None:
    """A middleware instance to compute headers with (it wraps no application)."""
    configured = options(settings)
    return None if configured is None else CrossOrigin(_no_app, **configured)


def simple_headers(
    cors: CrossOrigin, headers: list[tuple[bytes, bytes]], request_headers: Headers
) -> list[tuple[bytes, bytes]]:
    """``headers`` of a response to a simple (not preflight) request, with what the
    middleware adds for the request's ``Origin``."""
    if request_headers.get("origin") is None:
        return headers
    message: Message = {"type": "http.response.start", "status": 200, "headers": list(headers)}

    async def keep(_: Message) -> None:
        return None

    # The middleware's `send` awaits nothing but the `send` it is given: one step runs it.
    step = cors.send(message, keep, request_headers)
    try:
        step.send(None)
    except StopIteration:
        return list(message["headers"])
    step.close()
    raise RuntimeError("CORSMiddleware.send awaited something")


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("headers only")
