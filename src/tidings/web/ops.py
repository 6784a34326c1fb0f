"""Operations routes: cluster-wide stats and connections, a test notification, ``/admin``.

All of them are for backends and operators (API key); figures come from
:mod:`tidings.cluster`, so they answer for every process of the deployment.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi import Path as FastPath
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from tidings.models import Principal
from tidings.service import MAX_PAGE
from tidings.web import fastpath
from tidings.web.api import BACKEND, ApiKey, AppDep, page_body
from tidings.web.errors import documented
from tidings.web.responses import CreatedOut, JSONResponse, PageOut
from tidings.web.schemas import AudienceIn, Name, NotificationIn, Strict

router = APIRouter()
ADMIN_PAGE = FilePath(__file__).parent / "static" / "admin" / "index.html"
MAX_CONNECTIONS_LISTED = 1000


class ConnectionCounts(BaseModel):
    websocket: int
    sse: int
    total: int


class NotificationFigures(BaseModel):
    total: int = Field(description="stored now")
    last_minute: int
    last_hour: int
    by_type: dict[str, int] = Field(description="stored now, by type (the 50 largest)")


class LatencyHistogram(BaseModel):
    le: list[float] = Field(description="bucket upper bounds, seconds")
    counts: list[int] = Field(description="cumulative fan-outs at or under each bound")


class StatsOut(BaseModel):
    connections: ConnectionCounts
    users_online: int
    notifications: NotificationFigures
    deliveries: int = Field(description="notifications written to connections, since start")
    slow_consumer_closes: int
    processes: int = Field(description="server processes reporting")
    created: int = Field(description="notifications created since the processes started")
    latency: LatencyHistogram = Field(description="create to socket write, since start")


class ConnectionOut(BaseModel):
    id: str
    user: str
    transport: str = Field(description="websocket or sse")
    process: str = Field(description="host:pid:tag of the serving process")
    connected_at: str
    last_activity: str = Field(description="last frame from the client or notification to it")
    user_agent: str | None


class ConnectionsOut(BaseModel):
    items: list[ConnectionOut]


class TestIn(Strict):
    user: Name


@router.get(
    "/api/v1/stats",
    tags=["operations"],
    response_model=StatsOut,
    responses=documented(401, 503),
    openapi_extra=BACKEND,
)
async def stats(app: AppDep, _key: ApiKey) -> Response:
    """Figures for the whole deployment: every live process's connections and counters."""
    return JSONResponse(await app.cluster.stats())


@router.get(
    "/api/v1/connections",
    tags=["operations"],
    response_model=ConnectionsOut,
    responses=documented(401, 422),
    openapi_extra=BACKEND,
)
async def connections(
    app: AppDep,
    _key: ApiKey,
    user: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_CONNECTIONS_LISTED)] = 200,
) -> Response:
    """Live connections on every process, newest first; `user` keeps one user's."""
    return JSONResponse({"items": await app.cluster.connections(user, limit)})


@router.post(
    "/api/v1/test",
    status_code=201,
    tags=["operations"],
    response_model=CreatedOut,
    responses=documented(400, 401, 422, 429, 503),
    openapi_extra=BACKEND,
)
async def send_test(body: TestIn, app: AppDep, key: ApiKey) -> Response:
    """Send a test notification (type `test`) to one user."""
    note = NotificationIn(
        to=AudienceIn(users=[body.user]),
        type="test",
        title="Test notification",
        body="Sent from tidings to check that notifications reach you.",
    )
    payload, headers = await fastpath.create_notification(app, note, key, None)
    return JSONResponse(payload, status_code=201, headers=headers)


UserName = Annotated[
    str, FastPath(min_length=1, max_length=200, pattern=r"^[^\x00]+$", description="user id")
]


@router.get(
    "/api/v1/users/{user}/notifications",
    tags=["operations"],
    response_model=PageOut,
    responses=documented(401, 422, 503),
    openapi_extra=BACKEND,
)
async def user_inbox(
    app: AppDep,
    _key: ApiKey,
    user: UserName,
    roles: Annotated[
        str | None,
        Query(max_length=2000, pattern=r"^[^\x00]*$", description="comma-separated roles"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
) -> Response:
    """A user's inbox as they see it (with these roles), newest first, and unread count.

    For operators (the admin page); costs no read budget of the user's.
    """
    names = frozenset(part.strip() for part in (roles or "").split(",") if part.strip())
    page = await app.service.list_inbox(Principal(user=user, roles=names), limit=limit)
    return JSONResponse(page_body(page))


@router.get("/admin", include_in_schema=False)
async def admin() -> Any:
    """The operators' page (static; signs in with an API key kept in sessionStorage)."""
    return FileResponse(ADMIN_PAGE, headers={"Cache-Control": "no-cache"})
