"""Every error as ``{"error": {"code", "message"}}`` with the right status; never a bare 500."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.errors import RateLimited, TidingsError, TooLarge
from tidings.web.responses import ErrorBody, JSONResponse

log = logging.getLogger("tidings.web")

HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}


ERROR_DESCRIPTIONS = {
    400: "Malformed request: the body is not JSON, or a cursor is not an id",
    401: "No valid credentials: `Authorization: Bearer <API key or JWT>`",
    403: "Forbidden: origin or topic not allowed",
    404: "No such notification for this user",
    409: "This Idempotency-Key was used with another request body",
    413: "Over a size limit; the message names it (max_request_bytes, max_recipients, ...)",
    422: "Invalid input; the message names the fields at fault",
    429: "Over a rate limit (connections or reads per user, creates per API key); "
    "`Retry-After` says when to retry",
    503: "The database or the broker is unavailable; retry later",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that answers these error statuses (OpenAPI)."""
    return {
        status: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(TidingsError, _tidings_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


async def _tidings_error(_: Request, exc: TidingsError) -> Response:
    return tidings_error_response(exc)


def tidings_error_response(exc: TidingsError) -> Response:
    """The error body with the headers its status calls for (401, 429)."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    return error_response(exc.status, exc.code, exc.message, headers)


async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return error_response(400, "malformed_json", "request body is not valid JSON")
    return error_response(422, "invalid", describe_validation_errors(errors))


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """One line naming each bad field (at most five), for the error message."""
    return "; ".join(_describe(error) for error in errors[:5])


def _describe(error: Any) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    message = str(error.get("msg", "invalid"))
    if error.get("type") == "extra_forbidden":
        message = "unknown field"
    return f"{location or 'body'}: {message}"


async def _http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 405:
        return _method_not_allowed(request, exc)
    code = HTTP_CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


def _method_not_allowed(request: Request, exc: HTTPException) -> Response:
    """``Allow`` lists every method some route takes on this path, not the first route's.

    ``OPTIONS`` is answered 204 with that list (CORS preflights never get here: the CORS
    middleware answers them).
    """
    routes = request.app.router.routes
    methods = {
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    }
    if not methods or request.method in methods:  # a mounted app (static files) refused it
        methods = {m.strip() for m in (exc.headers or {}).get("Allow", "GET, HEAD").split(",")}
    allow = ", ".join(sorted(methods | {"OPTIONS"}))
    if request.method == "OPTIONS":
        return Response(status_code=204, headers={"Allow": allow})
    message = f"{request.method} is not allowed here; allowed: {allow}"
    return error_response(405, "method_not_allowed", message, {"Allow": allow})


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


async def _unexpected(_: Request, exc: Exception) -> Response:
    return unexpected_error_response(exc)


def unexpected_error_response(exc: Exception) -> Response:
    """Log a bug with its traceback; the client gets a 500 that tells it nothing more."""
    log.exception("unexpected error", exc_info=exc)
    return error_response(500, "internal", "internal error")


class BodyTooLarge(TooLarge):
    """The request body is over ``max_request_bytes``; the rest of it is not read."""


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None if the client left; :class:`BodyTooLarge` past ``limit``.

    The one body-size rule, for the app's middleware and the create fast path alike: a
    declared ``Content-Length`` over the limit is refused before a byte is read, and a
    body sent without one (chunked) as soon as it grows past the limit.
    """
    too_large = BodyTooLarge(f"request body is larger than max_request_bytes={limit}")
    for name, value in scope["headers"]:
        if name == b"content-length" and (not value.isdigit() or int(value) > limit):
            raise too_large
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def too_large_response(exc: BodyTooLarge) -> Response:
    """413, and close the connection: the unread rest of the body must not be parsed."""
    return error_response(exc.status, exc.code, exc.message, {"Connection": "close"})


class BodyLimit:
    """Read request bodies up to ``limit`` bytes before the app runs; 413 past that.

    Reading first (rather than counting as the app reads) keeps the answer a 413: FastAPI
    turns any error raised while it reads a body into a 400.
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(scope, receive, self.limit)
        except BodyTooLarge as exc:
            await too_large_response(exc)(scope, receive, send)
            return
        if body is None:
            return  # the client left before sending its request
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _has_body(scope: Scope) -> bool:
    return any(
        name in (b"content-length", b"transfer-encoding") and value != b"0"
        for name, value in scope["headers"]
    )
