"""The HTTP API under ``/api/v1``: backend side with API keys, end-user side with JWTs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response

from tidings.app import App
from tidings.auth import bearer
from tidings.errors import Forbidden, NotFound, Unauthenticated
from tidings.models import Notification, Page, Principal
from tidings.web import fastpath
from tidings.web.responses import JSONResponse
from tidings.web.schemas import DevTokenIn, NotificationIn, TopicMessageIn

router = APIRouter(prefix="/api/v1")

TOPIC_PATTERN = r"^[A-Za-z0-9_.:\-]{1,200}$"
NotificationId = Annotated[str, Path(max_length=64, description="notification id")]


async def get_app(request: Request) -> App:
    """Dependencies are coroutines: FastAPI would run plain functions in a thread pool."""
    return _app(request)


def _app(request: Request) -> App:
    return request.app.state.tidings  # type: ignore[no-any-return]


AppDep = Annotated[App, Depends(get_app)]


async def api_key(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The id of the backend's API key (``Authorization: Bearer <key>``)."""
    return _app(request).auth.api_key_id(bearer(authorization))


async def principal(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """The end user, from ``Authorization: Bearer <jwt>``."""
    token = bearer(authorization)
    if token is None:
        raise Unauthenticated("a token is required: Authorization: Bearer <jwt>")
    return _app(request).auth.verify_token(token)


ApiKey = Annotated[str, Depends(api_key)]
Me = Annotated[Principal, Depends(principal)]


# -- backend side ----------------------------------------------------------------------


@router.post("/notifications", status_code=201, tags=["backend"])
async def create_notification(
    body: NotificationIn,
    app: AppDep,
    key: ApiKey,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    """Create a notification for users, roles or everyone; stored once, pushed live.

    Repeating a request with the same `idempotency_key` (body or `Idempotency-Key`
    header) returns the original result and stores nothing; the same key with another
    body is a 409.
    """
    payload, headers = await fastpath.create_notification(app, body, key, idempotency_key)
    return JSONResponse(payload, status_code=201, headers=headers)


@router.post("/topics/{topic}/messages", status_code=202, tags=["backend"])
async def publish_topic_message(
    body: TopicMessageIn,
    app: AppDep,
    _key: ApiKey,
    topic: Annotated[str, Path(pattern=TOPIC_PATTERN)],
) -> dict[str, Any]:
    """Publish an ephemeral message to a topic's subscribers (no inbox entry)."""
    await app.service.publish_topic(topic, body.data)
    return {"topic": topic, "published": True}


@router.get("/stats", tags=["backend"])
async def stats(app: AppDep, _key: ApiKey) -> dict[str, Any]:
    """Live connection counts of this process."""
    return app.stats()


# -- end-user side ---------------------------------------------------------------------


@router.get("/me/notifications", tags=["inbox"])
async def list_notifications(
    app: AppDep,
    me: Me,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[str | None, Query(max_length=64, description="cursor: next_before")] = None,
    unread: bool = False,
) -> Response:
    """The user's notifications, newest first, with the exact unread count."""
    page = await app.service.list_inbox(me, limit=limit, before=before, unread_only=unread)
    return JSONResponse(page_body(page))


def page_body(page: Page) -> dict[str, Any]:
    return {
        "items": [item.to_public() for item in page.items],
        "unread_count": page.unread_count,
        "next_before": page.next_before,
    }


@router.get("/me/notifications/{notification_id}", tags=["inbox"])
async def get_notification(app: AppDep, me: Me, notification_id: NotificationId) -> Response:
    item: Notification = await app.service.get(me, notification_id)
    return JSONResponse(item.to_public())


@router.get("/me/unread-count", tags=["inbox"])
async def unread_count(app: AppDep, me: Me) -> dict[str, int]:
    return {"unread_count": await app.service.unread_count(me)}


@router.post("/me/notifications/read-all", tags=["inbox"])
async def read_all(app: AppDep, me: Me) -> dict[str, Any]:
    """Mark everything read with one write, however many items (a watermark)."""
    through = await app.service.mark_all_read(me)
    return {"read_through": through, "unread_count": await app.service.unread_count(me)}


@router.post("/me/notifications/{notification_id}/read", tags=["inbox"])
async def read_one(app: AppDep, me: Me, notification_id: NotificationId) -> dict[str, Any]:
    await app.service.mark_one_read(me, notification_id)
    return {"id": notification_id, "unread_count": await app.service.unread_count(me)}


@router.delete("/me/notifications/{notification_id}", tags=["inbox"])
async def delete_one(app: AppDep, me: Me, notification_id: NotificationId) -> dict[str, Any]:
    """Hide a notification for this user only (others keep theirs)."""
    await app.service.delete(me, notification_id)
    return {"id": notification_id, "deleted": True}


# -- development helpers (only with TIDINGS_DEV) ---------------------------------------


async def dev_only(request: Request) -> App:
    app = _app(request)
    if not app.settings.dev:
        raise NotFound("development endpoints are off (TIDINGS_DEV=false)")
    return app


DevApp = Annotated[App, Depends(dev_only)]


@router.post("/dev/token", tags=["development"])
async def dev_token(body: DevTokenIn, app: DevApp) -> dict[str, str]:
    """A token for any user, for the demo page. Development mode only."""
    if app.settings.jwt_secret is None:
        raise Forbidden("development tokens need an HS256 secret")
    token = app.auth.mint(body.user, roles=body.roles, topics=body.topics, ttl=body.ttl)
    return {"token": token}


@router.post("/dev/notifications", status_code=201, tags=["development"])
async def dev_notification(body: NotificationIn, app: DevApp) -> Response:
    """Create a notification without an API key. Development mode only."""
    payload, headers = await fastpath.create_notification(app, body, None, None)
    return JSONResponse(payload, status_code=201, headers=headers)
