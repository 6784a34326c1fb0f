"""Development mode: on only when both secrets were generated, or with TIDINGS_DEV=true.

In production the demo page and the ``/api/v1/dev/*`` helpers do not exist: 404 under
every spelling, and absent from the OpenAPI document.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tidings.credentials import ensure_secrets
from tidings.settings import Settings
from tidings.web import create_app

SECRET = "production-secret-that-is-long-enough-for-hs256"
KEY = "production-api-key"

PRODUCTION = {
    "only the JWT secret set": {"TIDINGS_JWT_SECRET": SECRET},
    "only the API keys set": {"TIDINGS_API_KEYS": KEY},
    "both set": {"TIDINGS_JWT_SECRET": SECRET, "TIDINGS_API_KEYS": KEY},
    "nothing set but TIDINGS_DEV=false": {"TIDINGS_DEV": "false"},
}
DEVELOPMENT = {
    "nothing set": {},
    "both set and TIDINGS_DEV=true": {
        "TIDINGS_JWT_SECRET": SECRET,
        "TIDINGS_API_KEYS": KEY,
        "TIDINGS_DEV": "true",
    },
}
DEV_ROUTES = ("/api/v1/dev/token", "/api/v1/dev/notifications")
DEMO_SPELLINGS = ("/demo", "/static/demo.html", "/static/./demo.html", "/static//demo.html")


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Only what each case sets, as ``tidings serve`` would read it."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TIDINGS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TIDINGS_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("TIDINGS_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/tidings.db")

    def apply(values: dict[str, str]) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return apply


async def started(apply, values: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    apply(values)
    application = create_app()  # the uvicorn factory path: settings from the environment
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


@pytest.mark.parametrize("values", PRODUCTION.values(), ids=PRODUCTION.keys())
def test_configuring_either_secret_means_production(environment, values) -> None:  # type: ignore[no-untyped-def]
    environment(values)
    assert ensure_secrets(Settings()).settings.dev is False


@pytest.mark.parametrize("values", DEVELOPMENT.values(), ids=DEVELOPMENT.keys())
def test_development_needs_both_secrets_generated_or_tidings_dev(environment, values) -> None:  # type: ignore[no-untyped-def]
    environment(values)
    assert ensure_secrets(Settings()).settings.dev is True


@pytest.mark.parametrize("values", PRODUCTION.values(), ids=PRODUCTION.keys())
async def test_production_has_no_demo_and_no_dev_routes(environment, values) -> None:  # type: ignore[no-untyped-def]
    async for client in started(environment, values):
        for path in DEMO_SPELLINGS:
            for method in ("GET", "HEAD"):
                response = await client.request(method, path)
                assert response.status_code == 404, (method, path)
        assert (await client.get("/demo")).json()["error"]["code"] == "not_found"
        token = await client.post(DEV_ROUTES[0], json={"user": "mallory", "roles": ["admin"]})
        assert token.status_code == 404, token.text
        create = await client.post(DEV_ROUTES[1], json={"to": {"all": True}, "title": "x"})
        assert create.status_code == 404, create.text
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert not [path for path in paths if "/dev/" in path]
        assert (await client.get("/static/tidings.js")).status_code == 200


@pytest.mark.parametrize("values", DEVELOPMENT.values(), ids=DEVELOPMENT.keys())
async def test_development_serves_the_demo_and_dev_routes(environment, values) -> None:  # type: ignore[no-untyped-def]
    async for client in started(environment, values):
        assert (await client.get("/demo")).status_code == 200
        assert (await client.get("/static/demo.html")).status_code == 200
        token = await client.post(DEV_ROUTES[0], json={"user": "dana"})
        assert token.status_code == 200, token.text
        create = await client.post(DEV_ROUTES[1], json={"to": {"users": ["dana"]}, "title": "x"})
        assert create.status_code == 201, create.text
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert set(DEV_ROUTES) <= set(paths)
