"""FastAPI integration: the client as a dependency and a router serving tokens.

    from tidings_client.fastapi import TidingsDependency, token_router

    tidings = TidingsDependency("http://localhost:8000", api_key=..., jwt_secret=...)
    app = FastAPI(lifespan=tidings.lifespan)
    app.include_router(token_router(tidings, identify=current_user_and_roles))

    @app.post("/tasks")
    async def create(client: Annotated[AsyncTidings, Depends(tidings)]):
        await client.notify(to={"users": ["ada"]}, title="New task")

``identify(request)`` is the application's own auth: it returns ``(user_id, roles)``
(or ``None`` for an anonymous request, answered 401); it may be sync or async and may
itself use FastAPI dependencies when passed as ``Depends`` (see ``token_router``).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from tidings_client.client import AsyncTidings

Identity = tuple[str, Sequence[str]] | None
Identify = Callable[..., Identity | Awaitable[Identity]]


class TidingsDependency:
    """One :class:`AsyncTidings` for the application; ``Depends(dependency)`` gives it."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self._options = options
        self._client: AsyncTidings | None = None

    @property
    def client(self) -> AsyncTidings:
        if self._client is None:
            self._client = AsyncTidings(self.url, **self._options)
        return self._client

    async def __call__(self) -> AsyncTidings:
        return self.client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """``FastAPI(lifespan=dependency.lifespan)`` closes the client at shutdown."""
        try:
            yield
        finally:
            await self.aclose()


def token_router(
    tidings: TidingsDependency,
    *,
    identify: Identify,
    path: str = "/tidings/token",
    ttl: int = 3600,
    **router_options: Any,
) -> APIRouter:
    """A router with ``GET {path}``: ``{"token", "url", "expires_at"}`` for the user that
    ``identify`` returns, with their roles; 401 when it returns ``None``.

    ``identify`` is resolved as a FastAPI dependency, so it can take ``Request`` or
    depend on the application's own auth dependencies.
    """
    router = APIRouter(**router_options)

    async def resolve(identity: Any = Depends(identify)) -> Identity:  # noqa: B008
        found: Identity = await identity if inspect.isawaitable(identity) else identity
        return found

    @router.get(path, tags=["tidings"])
    async def tidings_token(request: Request, identity: Identity = Depends(resolve)) -> Any:  # noqa: B008
        if identity is None:
            error = {"code": "unauthenticated", "message": "sign in to get a notifications token"}
            return JSONResponse({"error": error}, status_code=401)
        user, roles = identity
        token = tidings.client.token(user, roles=list(roles), ttl=ttl)
        body = {"token": token, "url": tidings.url, "expires_at": int(time.time()) + ttl}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    return router
