"""The FastAPI integration with FastAPI's TestClient and a real tidings server.

No `from __future__ import annotations` here: the routes are defined inside a fixture and
FastAPI resolves string annotations in module globals, where `tidings` is not.
"""

from typing import Annotated

import jwt
import pytest
from fastapi import Depends, FastAPI, Header
from fastapi.testclient import TestClient
from tidings_client import AsyncTidings
from tidings_client.fastapi import TidingsDependency, token_router


def current_user(x_user: Annotated[str | None, Header()] = None):
    """The application's own auth (here: a header), returning (user, roles)."""
    return (x_user, ["staff"]) if x_user else None


async def current_user_async(x_user: Annotated[str | None, Header()] = None):
    return current_user(x_user)


@pytest.fixture(params=[current_user, current_user_async], ids=["sync", "async"])
def app(request, server, credentials):
    tidings = TidingsDependency(server.http, **credentials)
    app = FastAPI(lifespan=tidings.lifespan)
    app.include_router(token_router(tidings, identify=request.param, prefix="/api"))

    @app.post("/tasks/{name}")
    async def create_task(name: str, user: str, client: Annotated[AsyncTidings, Depends(tidings)]):
        created = await client.notify(to={"users": [user]}, title=f"New task {name}")
        return {"notification": created["id"]}

    @app.get("/inbox/{user}")
    async def inbox(user: str, client: Annotated[AsyncTidings, Depends(tidings)]):
        return await client.list(user)

    return app


def test_the_token_endpoint_uses_the_applications_auth(app, user, credentials, server):
    with TestClient(app) as http:
        body = http.get("/api/tidings/token", headers={"X-User": user}).json()
        anonymous = http.get("/api/tidings/token")
    claims = jwt.decode(body["token"], credentials["jwt_secret"], algorithms=["HS256"])
    assert claims["sub"] == user and claims["roles"] == ["staff"] and body["url"] == server.http
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"


def test_the_dependency_gives_a_working_client(app, user):
    with TestClient(app) as http:
        created = http.post("/tasks/docs", params={"user": user}).json()
        page = http.get(f"/inbox/{user}").json()
    assert [item["id"] for item in page["items"]] == [created["notification"]]
    assert page["items"][0]["title"] == "New task docs"
