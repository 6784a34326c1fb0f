"""The create endpoints' hot path as plain ASGI.

``POST /api/v1/notifications`` and ``POST /api/v1/events`` are what backends call most.
Measured on one process, FastAPI's dependency solving and middleware layers cost more
CPU than storing the notification (group-committed), so this middleware answers those
two routes itself: the same validation models, the same service call, the same error
bodies. Every other request, and the OpenAPI description of these, stays with FastAPI.
It sits in front of FastAPI's own layers too (:class:`tidings.web.TidingsAPI`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.app import App
from tidings.auth import bearer
from tidings.errors import BadRequest, TidingsError, ValidationFailed
from tidings.telemetry import count_request
from tidings.web.creating import store_new
from tidings.web.errors import (
    BodyTooLarge,
    describe_validation_errors,
    read_body,
    tidings_error_response,
    too_large_response,
    unexpected_error_response,
)
from tidings.web.event_schemas import EventIn
from tidings.web.events_create import EVENTS_PATH, create_event
from tidings.web.schemas import Delivered, NotificationIn, to_new_notification

CREATE_PATH = "/api/v1/notifications"


async def create_notification(
    app: App, body: NotificationIn, api_key: str | None, header_key: str | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate limits, store and publish; return the response body and headers."""
    if app.creates is not None and api_key is not None:
        await app.charge_create(api_key)
    new = to_new_notification(body, app.settings)
    return await store_new(app, new, body, api_key, header_key)


Handler = Callable[[App, Any, str | None, str | None], Awaitable[tuple[dict, dict]]]
ROUTES: dict[str, tuple[str, type[Delivered], Handler]] = {
    path: route
    for route in (
        (CREATE_PATH, NotificationIn, create_notification),
        (EVENTS_PATH, EventIn, create_event),
    )
    for path in (route[0], route[0] + "/")
}
"""The creates answered here: path -> (route path, request model, handler)."""


class CreateFastPath:
    def __init__(self, asgi: ASGIApp, *, tidings: App) -> None:
        self.asgi = asgi
        self.tidings = tidings
        self.limit = tidings.settings.max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.asgi(scope, receive, send)
            return
        path, model, handler = route
        try:
            answer = await self._handle(scope, receive, model, handler)
        except BodyTooLarge as exc:
            await too_large_response(exc)(scope, receive, send)
            count_request("POST", path, exc.status)
            return
        except TidingsError as exc:
            await tidings_error_response(exc)(scope, receive, send)
            count_request("POST", path, exc.status)
            return
        except Exception as exc:  # what Starlette's error middleware does for the rest
            await unexpected_error_response(exc)(scope, receive, send)
            count_request("POST", path, 500)
            return
        if answer is not None:
            await _respond(send, *answer)
            count_request("POST", path, answer[0])

    async def _handle(
        self, scope: Scope, receive: Receive, model: type[Delivered], handler: Handler
    ) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        headers = dict(scope["headers"])
        api_key = self.tidings.auth.api_key_id(bearer(_text(headers.get(b"authorization"))))
        raw = await read_body(scope, receive, self.limit)
        if raw is None:
            return None  # the client left
        try:
            body = model.model_validate_json(raw)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise BadRequest("request body is not valid JSON", code="malformed_json") from None
            raise ValidationFailed(describe_validation_errors(exc.errors())) from None
        header_key = _text(headers.get(b"idempotency-key"))
        payload, extra = await handler(self.tidings, body, api_key, header_key)
        return 201, payload, extra


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


async def _respond(send: Send, status: int, body: dict[str, Any], extra: dict[str, str]) -> None:
    content = orjson.dumps(body)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in extra.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
