"""Values and helpers shared by the test modules (conftest.py holds only fixtures)."""

from __future__ import annotations

from tidings.settings import Settings

API_KEY = "test-api-key"
SECRET = "test-secret-that-is-long-enough-for-hs256"


def make_settings(tmp_path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/tidings.db",
        "broker_url": "memory://",
        "jwt_secret": SECRET,
        "api_keys": [API_KEY, "second-key"],
        "dev": True,
        "secrets_file": str(tmp_path / "secrets.json"),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def backend_headers(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def user_headers(
    app, user: str, roles: list[str] | None = None, locale: str | None = None
) -> dict[str, str]:
    token = app.state.tidings.auth.mint(user, roles=roles or [], locale=locale)
    return {"Authorization": f"Bearer {token}"}
