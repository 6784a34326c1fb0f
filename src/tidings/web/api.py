"""The HTTP API under ``/api/v1``: backend side with API keys, end-user side with JWTs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import Response
from pydantic import Field

from tidings import ids
from tidings.app import App
from tidings.auth import bearer
from tidings.errors import Unauthenticated
from tidings.models import InboxFilter, Notification, Page, Principal
from tidings.service import MAX_PAGE
from tidings.settings import Settings
from tidings.topics import TOPIC_PATTERN
from tidings.web import fastpath
from tidings.web.errors import ERROR_DESCRIPTIONS, documented
from tidings.web.responses import (
    CreatedOut,
    DeletedOut,
    JSONResponse,
    NotificationOut,
    PageOut,
    PublishedOut,
    ReadAllOut,
    ReadOneOut,
    UnreadCountOut,
)
from tidings.web.schemas import TYPE_PATTERN, Level, NotificationIn, TopicMessageIn

router = APIRouter(prefix="/api/v1")

NotificationId = Annotated[
    str,
    # Documented, not enforced: anything that is not an id simply does not exist (404).
    Path(description="notification id", json_schema_extra={"pattern": ids.PATTERN}),
]
Cursor = Annotated[
    str | None,
    Query(description="cursor: `next_before`", json_schema_extra={"pattern": ids.PATTERN}),
]

FilterName = Annotated[str, Field(min_length=1, max_length=100, pattern=TYPE_PATTERN)]

BACKEND: dict[str, Any] = {"security": [{"apiKey": []}]}
"""Operations for backends: ``Authorization: Bearer <API key>``."""
END_USER: dict[str, Any] = {"security": [{"userToken": []}]}
"""Operations for end users: ``Authorization: Bearer <JWT>``."""
SECURITY_SCHEMES = {
    "apiKey": {"type": "http", "scheme": "bearer", "description": "a backend's API key"},
    "userToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "the end user's JWT (`sub`, `exp`, optional `roles`, `topics`)",
    },
}


async def get_app(request: Request) -> App:
    """Dependencies are coroutines: FastAPI would run plain functions in a thread pool."""
    return _app(request)


def _app(request: Request) -> App:
    return request.app.state.tidings


AppDep = Annotated[App, Depends(get_app)]


Authorization = Annotated[str | None, Header(include_in_schema=False)]


async def api_key(request: Request, authorization: Authorization = None) -> str:
    """The id of the backend's API key (``Authorization: Bearer <key>``)."""
    return _app(request).auth.api_key_id(bearer(authorization))


async def principal(request: Request, authorization: Authorization = None) -> Principal:
    """The end user, from ``Authorization: Bearer <jwt>``."""
    token = bearer(authorization)
    if token is None:
        raise Unauthenticated("a token is required: Authorization: Bearer <jwt>")
    return _app(request).auth.verify_token(token)


ApiKey = Annotated[str, Depends(api_key)]
Me = Annotated[Principal, Depends(principal)]


# -- backend side ----------------------------------------------------------------------


@router.post(
    "/notifications",
    status_code=201,
    tags=["backend"],
    response_model=CreatedOut,
    responses=documented(400, 401, 409, 413, 422, 429, 503),
    openapi_extra=BACKEND,
)
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


@router.post(
    "/topics/{topic}/messages",
    status_code=202,
    tags=["backend"],
    response_model=PublishedOut,
    responses=documented(400, 401, 413, 422, 429, 503),
    openapi_extra=BACKEND,
)
async def publish_topic_message(
    body: TopicMessageIn,
    app: AppDep,
    key: ApiKey,
    topic: Annotated[str, Path(pattern=TOPIC_PATTERN)],
) -> dict[str, Any]:
    """Publish an ephemeral message to a topic's subscribers (no inbox entry)."""
    await app.charge_create(key)
    await app.service.publish_topic(topic, body.data)
    return {"topic": topic, "published": True}


# -- end-user side ---------------------------------------------------------------------


@router.get(
    "/me/notifications",
    tags=["inbox"],
    response_model=PageOut,
    responses=documented(400, 401, 422, 429, 503),
    openapi_extra=END_USER,
)
async def list_notifications(
    app: AppDep,
    me: Me,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    before: Cursor = None,
    unread: bool = False,
    archived: Annotated[bool, Query(description="the archive instead of the inbox")] = False,
    types: Annotated[list[FilterName], Query(alias="type", max_length=20)] = [],  # noqa: B006
    categories: Annotated[list[FilterName], Query(alias="category", max_length=20)] = [],  # noqa: B006
    levels: Annotated[list[Level], Query(alias="level", max_length=4)] = [],  # noqa: B006
) -> Response:
    """The user's notifications, newest first, with the exact unread count.

    ``?archived=true`` lists only archived items (the inbox leaves them out, and snoozed
    ones until they wake); ``type``, ``category`` and ``level`` filter (repeatable).

    Inbox reads (this, ``unread-count`` and the WebSocket ``list``) share a budget per
    user (``TIDINGS_READ_RATE``/``TIDINGS_READ_BURST``): over it, 429 with ``Retry-After``.
    """
    app.charge_read(me)
    only = InboxFilter(archived, tuple(types), tuple(categories), tuple(levels))
    page = await app.service.list_inbox(
        me, limit=limit, before=before, unread_only=unread, only=only
    )
    return JSONResponse(page_body(page, me.locale))


def page_body(page: Page, locale: str | None = None) -> dict[str, Any]:
    """A page in the reader's language (JWT claim ``locale``)."""
    return {
        "items": [item.to_public(locale) for item in page.items],
        "unread_count": page.unread_count,
        "next_before": page.next_before,
    }


@router.get(
    "/me/notifications/{notification_id}",
    tags=["inbox"],
    response_model=NotificationOut,
    responses=documented(401, 404, 503),
    openapi_extra=END_USER,
)
async def get_notification(app: AppDep, me: Me, notification_id: NotificationId) -> Response:
    item: Notification = await app.service.get(me, notification_id)
    return JSONResponse(item.to_public(me.locale))


@router.get(
    "/me/unread-count",
    tags=["inbox"],
    response_model=UnreadCountOut,
    responses=documented(401, 429, 503),
    openapi_extra=END_USER,
)
async def unread_count(app: AppDep, me: Me) -> dict[str, int]:
    app.charge_read(me)
    return {"unread_count": await app.service.unread_count(me)}


@router.post(
    "/me/notifications/read-all",
    tags=["inbox"],
    response_model=ReadAllOut,
    responses=documented(401, 503),
    openapi_extra=END_USER,
)
async def read_all(app: AppDep, me: Me) -> dict[str, Any]:
    """Mark everything read with one write, however many items (a watermark)."""
    through = await app.service.mark_all_read(me)
    return {"read_through": through, "unread_count": await app.service.unread_count(me)}


@router.post(
    "/me/notifications/{notification_id}/read",
    tags=["inbox"],
    response_model=ReadOneOut,
    responses=documented(401, 404, 503),
    openapi_extra=END_USER,
)
async def read_one(app: AppDep, me: Me, notification_id: NotificationId) -> dict[str, Any]:
    await app.service.mark_one_read(me, notification_id)
    return {"id": notification_id, "unread_count": await app.service.unread_count(me)}


@router.delete(
    "/me/notifications/{notification_id}",
    tags=["inbox"],
    response_model=DeletedOut,
    responses=documented(401, 404, 503),
    openapi_extra=END_USER,
)
async def delete_one(app: AppDep, me: Me, notification_id: NotificationId) -> dict[str, Any]:
    """Hide a notification for this user only (others keep theirs)."""
    await app.service.delete(me, notification_id)
    return {"id": notification_id, "deleted": True}


# -- the OpenAPI document ----------------------------------------------------------------


def document(app: FastAPI, settings: Settings) -> None:
    """Complete the app's OpenAPI document: credentials, and the limits set in settings."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            spec.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            _state_limits(spec["components"].get("schemas", {}), settings)
            _our_validation_errors(spec)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _state_limits(schemas: dict[str, Any], settings: Settings) -> None:
    """What ``to_new_notification`` checks against settings (a 413 past it), as schema."""
    for name, schema in schemas.items():
        properties = schema.get("properties", {})
        if name.startswith("AudienceIn"):
            for field in ("users", "roles"):
                properties[field]["maxItems"] = settings.max_recipients
            schema["description"] = (
                f"at most max_recipients={settings.max_recipients} users and roles together"
            )
        elif name.startswith("NotificationIn"):
            properties["title"]["maxLength"] = settings.max_title_length
            properties["body"]["maxLength"] = settings.max_body_length
            properties["data"]["description"] = (
                f"any JSON object of at most max_data_bytes={settings.max_data_bytes} bytes"
                " encoded; integers within 64 bits, no NaN or Infinity"
            )


def _our_validation_errors(spec: dict[str, Any]) -> None:
    """FastAPI documents its own 422 body; ours is the error body like every other error."""
    ours = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for operations in spec["paths"].values():
        for operation in operations.values():
            invalid = operation.get("responses", {}).get("422")
            if invalid is not None and "HTTPValidationError" in str(invalid):
                operation["responses"]["422"] = {
                    "description": ERROR_DESCRIPTIONS[422],
                    "content": ours,
                }
    for name in ("HTTPValidationError", "ValidationError"):
        spec["components"]["schemas"].pop(name, None)
