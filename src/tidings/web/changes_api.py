"""Changes after sending (API key): ``PATCH`` and ``DELETE /api/v1/notifications/{id}``.

Each change takes a new position in the delivery log, so every recipient's open clients
get ``updated`` (or ``deleted``) in order, and a client that was away gets the final
state when it resumes (README, "Changes after sending").
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from tidings.web.api import BACKEND, ApiKey, AppDep, NotificationId
from tidings.web.errors import documented
from tidings.web.responses import JSONResponse, NotificationOut, RetractedOut
from tidings.web.schemas import NotificationPatchIn, to_changes

router = APIRouter(prefix="/api/v1/notifications", tags=["backend"])


@router.patch(
    "/{notification_id}",
    response_model=NotificationOut,
    responses=documented(400, 401, 404, 413, 422, 503),
    openapi_extra=BACKEND,
)
async def change_notification(
    app: AppDep, key: ApiKey, notification_id: NotificationId, body: NotificationPatchIn
) -> Response:
    """Change title, body, data, level, url or actions for every recipient.

    Other fields cannot change (422). Texts in other languages, rendered from the old
    data, are dropped when the title, body or url change.
    """
    item = await app.service.change(notification_id, to_changes(body, app.settings))
    return JSONResponse(item.to_public() | {"read_at": None})


@router.delete(
    "/{notification_id}",
    response_model=RetractedOut,
    responses=documented(401, 404, 503),
    openapi_extra=BACKEND,
)
async def retract_notification(
    app: AppDep, key: ApiKey, notification_id: NotificationId
) -> dict[str, Any]:
    """Take a notification back for everyone: it leaves every list and count, and open
    clients get ``deleted``."""
    await app.service.retract(notification_id)
    return {"id": notification_id, "retracted": True}
