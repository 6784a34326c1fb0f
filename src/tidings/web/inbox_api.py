"""The user's own inbox actions (JWT): unread again, archive, snooze, action clicks.

Per user, also on broadcasts stored once: each is a receipt of this user, never a copy
of the notification. Ids the user cannot see are 404, whether or not they exist.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from tidings.web.api import END_USER, AppDep, Me, NotificationId
from tidings.web.errors import documented
from tidings.web.responses import (
    ActedOut,
    ArchivedReadOut,
    JSONResponse,
    NotificationOut,
)
from tidings.web.schemas import ActionId, SnoozeIn

router = APIRouter(prefix="/api/v1/me/notifications", tags=["inbox"])

ONE: dict[str, Any] = {
    "response_model": NotificationOut,
    "responses": documented(401, 404, 503),
    "openapi_extra": END_USER,
}


@router.post(
    "/archive-read",
    response_model=ArchivedReadOut,
    responses=documented(401, 503),
    openapi_extra=END_USER,
)
async def archive_read(app: AppDep, me: Me) -> dict[str, Any]:
    """Archive every read item of the inbox."""
    done = await app.service.archive_read(me)
    return {"ids": done, "unread_count": await app.service.unread_count(me)}


@router.post("/{notification_id}/unread", **ONE)
async def mark_unread(app: AppDep, me: Me, notification_id: NotificationId) -> Response:
    """Mark unread again; the user's other connections get ``updated`` and ``unread``."""
    item = await app.service.mark_unread(me, notification_id)
    return JSONResponse(item.to_public(me.locale))


@router.post("/{notification_id}/archive", **ONE)
async def archive(app: AppDep, me: Me, notification_id: NotificationId) -> Response:
    """Out of the inbox and its count, into ``?archived=true``."""
    item = await app.service.archive(me, notification_id)
    return JSONResponse(item.to_public(me.locale))


@router.post("/{notification_id}/unarchive", **ONE)
async def unarchive(app: AppDep, me: Me, notification_id: NotificationId) -> Response:
    item = await app.service.unarchive(me, notification_id)
    return JSONResponse(item.to_public(me.locale))


@router.post(
    "/{notification_id}/snooze",
    response_model=NotificationOut,
    responses=documented(400, 401, 404, 422, 503),
    openapi_extra=END_USER,
)
async def snooze(app: AppDep, me: Me, notification_id: NotificationId, body: SnoozeIn) -> Response:
    """Hidden until ``until``; then back, unread, pushed live to every open connection."""
    item = await app.service.snooze(me, notification_id, body.until)
    return JSONResponse(item.to_public(me.locale))


@router.post(
    "/{notification_id}/actions/{action}",
    status_code=202,
    response_model=ActedOut,
    responses=documented(401, 404, 422, 503),
    openapi_extra=END_USER,
)
async def act(
    app: AppDep, me: Me, notification_id: NotificationId, action: ActionId
) -> dict[str, Any]:
    """Click an action button: the backend hears of it as a ``notification.action`` webhook."""
    await app.service.act(me, notification_id, action)
    return {"id": notification_id, "action": action, "accepted": True}
