"""A token for ``request.user`` (their group names as roles), for the browser client.

Route it with ``path("tidings/", include("tidings_client.django.urls"))``; the bell's
template tag finds it by name (``tidings-token``). ``token_view`` is for WSGI and
``async_token_view`` for ASGI deployments.
"""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest, JsonResponse

from tidings_client.django.conf import get_client, tidings_settings, token_ttl


def token_view(request: HttpRequest) -> JsonResponse:
    user = request.user
    if not user.is_authenticated:
        return _unauthenticated()
    roles = list(user.groups.values_list("name", flat=True))
    return _token(str(user.get_username()), roles)


async def async_token_view(request: HttpRequest) -> JsonResponse:
    user = await request.auser()
    if not user.is_authenticated:
        return _unauthenticated()
    roles = [name async for name in user.groups.values_list("name", flat=True)]
    return _token(str(user.get_username()), roles)


def _token(user: str, roles: list[str]) -> JsonResponse:
    ttl = token_ttl()
    body: dict[str, Any] = {
        "token": get_client().token(user, roles=roles, ttl=ttl),
        "url": tidings_settings()["URL"],
        "expires_at": int(time.time()) + ttl,
    }
    return JsonResponse(body, headers={"Cache-Control": "no-store"})


def _unauthenticated() -> JsonResponse:
    error = {"code": "unauthenticated", "message": "sign in to get a notifications token"}
    return JsonResponse({"error": error}, status=401)
