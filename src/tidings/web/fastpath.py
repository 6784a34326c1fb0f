"""The create endpoint's hot path as plain ASGI.

``POST /api/v1/notifications`` is what backends call most. Measured on one process,
FastAPI's dependency solving and middleware layers cost more CPU than storing the
notification (group-committed), so this middleware answers that one route itself:
the same validation model, the same service call, the same error bodies. Every other
request, and the OpenAPI description of this one, stays with FastAPI.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.app import App
from tidings.auth import bearer
from tidings.errors import TidingsError, TooLarge
from tidings.web.errors import describe_validation_errors
from tidings.web.schemas import NotificationIn, request_hash, to_new_notification

CREATE_PATH = "/api/v1/notifications"


async def create_notification(
    app: App, body: NotificationIn, api_key: str | None, header_key: str | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate limits, store and publish; return the response body and headers."""
    new = to_new_notification(body, app.settings)
    idempotency_key = body.idempotency_key or header_key
    outcome = await app.service.create(
        new,
        api_key=api_key,
        idempotency_key=idempotency_key,
        request_hash=request_hash(body) if idempotency_key else None,
    )
    headers = {} if outcome.created else {"Idempotent-Replayed": "true"}
    payload = outcome.notification.to_public() | {"to": body.to.model_dump(), "read_at": None}
    return payload, headers


class CreateFastPath:
    def __init__(self, asgi: ASGIApp, *, tidings: App) -> None:
        self.asgi = asgi
        self.tidings = tidings
        self.limit = tidings.settings.max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in (CREATE_PATH, CREATE_PATH + "/")
        ):
            await self.asgi(scope, receive, send)
            return
        headers = dict(scope["headers"])
        try:
            status, body, extra = await self._handle(headers, receive)
        except TidingsError as exc:
            status, body, extra = exc.status, _error(exc.code, exc.message), {}
            if exc.status == 401:
                extra = {"WWW-Authenticate": "Bearer"}
        await _respond(send, status, body, extra)

    async def _handle(
        self, headers: dict[bytes, bytes], receive: Receive
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        api_key = self.tidings.auth.api_key_id(bearer(_text(headers.get(b"authorization"))))
        raw = await self._read_body(receive)
        try:
            body = NotificationIn.model_validate_json(raw)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                return 400, _error("malformed_json", "request body is not valid JSON"), {}
            return 422, _error("invalid", describe_validation_errors(exc.errors())), {}
        header_key = _text(headers.get(b"idempotency-key"))
        if header_key is not None and len(header_key) > 255:
            return 422, _error("invalid", "Idempotency-Key: at most 255 characters"), {}
        payload, extra = await create_notification(self.tidings, body, api_key, header_key)
        return 201, payload, extra

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise TooLarge(f"request body is larger than max_request_bytes={self.limit}")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


async def _respond(send: Send, status: int, body: dict[str, Any], extra: dict[str, str]) -> None:
    content = orjson.dumps(body)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in extra.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
