"""The one create path of ``POST /api/v1/notifications`` and ``POST /api/v1/events``."""

from __future__ import annotations

from typing import Any

from tidings.app import App
from tidings.models import NewNotification
from tidings.web import schemas
from tidings.web.schemas import request_hash


async def store_new(
    app: App,
    new: NewNotification,
    body: schemas.Delivered,
    api_key: str | None,
    header_key: str | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The one create path (``/notifications`` and ``/events``): idempotency, group
    commit, expiry, live delivery; return the response body and headers."""
    idempotency_key = schemas.idempotency_key(body, header_key)
    outcome = await app.service.create(
        new,
        api_key=api_key,
        idempotency_key=idempotency_key,
        request_hash=request_hash(body) if idempotency_key else None,
    )
    headers = {} if outcome.created else {"Idempotent-Replayed": "true"}
    payload = outcome.notification.to_public() | {"to": body.to.model_dump(), "read_at": None}
    if outcome.change == "updated":
        payload["replaced"] = True
    return payload, headers
