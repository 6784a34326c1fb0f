"""``settings.TIDINGS`` and the clients built from it (one of each per process)."""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from tidings_client import AsyncTidings, Tidings

KEYS = ("URL", "API_KEY", "JWT_SECRET")
DEFAULT_TOKEN_TTL = 3600


def tidings_settings() -> dict[str, Any]:
    """``TIDINGS = {"URL": ..., "API_KEY": ..., "JWT_SECRET": ..., "TOKEN_TTL": 3600}``."""
    value = getattr(settings, "TIDINGS", None)
    if not isinstance(value, dict) or not value.get("URL"):
        raise ImproperlyConfigured('settings.TIDINGS = {"URL": ..., "API_KEY": ..., ...}')
    return value


def _options() -> dict[str, Any]:
    conf = tidings_settings()
    return {"api_key": conf.get("API_KEY"), "jwt_secret": conf.get("JWT_SECRET")}


@functools.cache
def get_client() -> Tidings:
    """The process's sync client, configured from ``settings.TIDINGS``."""
    return Tidings(tidings_settings()["URL"], **_options())


def get_async_client() -> AsyncTidings:
    """A new async client for the caller's event loop (``async with`` it)."""
    return AsyncTidings(tidings_settings()["URL"], **_options())


def token_ttl() -> int:
    return int(tidings_settings().get("TOKEN_TTL", DEFAULT_TOKEN_TTL))


def _reset(*, setting: str, **_: Any) -> None:
    if setting == "TIDINGS":
        get_client.cache_clear()


setting_changed.connect(_reset)
