"""Development mode only: the demo page and the ``/api/v1/dev/*`` helpers.

:func:`tidings.web.create_app` includes this router only when ``settings.dev`` is on
(see :mod:`tidings.credentials` for when that is). In production these routes do not
exist at all: they answer 404 and are absent from ``/openapi.json``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from tidings.errors import Forbidden
from tidings.web import dev_logs, fastpath
from tidings.web.api import AppDep
from tidings.web.responses import JSONResponse
from tidings.web.schemas import DevTokenIn, NotificationIn

DEMO_PAGE = Path(__file__).parent / "static" / "demo.html"

router = APIRouter()
router.include_router(dev_logs.router)


@router.get("/demo", include_in_schema=False)
async def demo() -> Response:
    return FileResponse(DEMO_PAGE, headers={"Cache-Control": "no-cache"})


@router.post("/api/v1/dev/token", tags=["development"])
async def dev_token(body: DevTokenIn, app: AppDep) -> dict[str, str]:
    """A token for any user, for the demo page. Development mode only."""
    if app.settings.jwt_secret is None:
        raise Forbidden("development tokens need an HS256 secret")
    token = app.auth.mint(
        body.user, roles=body.roles, topics=body.topics, publish=body.publish, ttl=body.ttl
    )
    return {"token": token}


@router.post("/api/v1/dev/notifications", status_code=201, tags=["development"])
async def dev_notification(body: NotificationIn, app: AppDep) -> Response:
    """Create a notification without an API key. Development mode only."""
    payload, headers = await fastpath.create_notification(app, body, None, None)
    return JSONResponse(payload, status_code=201, headers=headers)
