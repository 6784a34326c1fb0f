"""End-user JWTs minted locally with the server's HS256 secret (``TIDINGS_JWT_SECRET``)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import jwt

from tidings_client.errors import InvalidRequest, NotConfigured

MAX_NAME = 200


def mint(
    secret: str | None,
    user: str,
    *,
    roles: Iterable[str] = (),
    topics: Iterable[str] = (),
    locale: str | None = None,
    ttl: int = 3600,
    claims: dict[str, Any] | None = None,
) -> str:
    """A JWT for ``user`` (claim ``sub``) valid for ``ttl`` seconds."""
    if not secret:
        raise NotConfigured("minting tokens needs jwt_secret (the server's TIDINGS_JWT_SECRET)")
    check_name("user", user)
    roles, topics = list(roles), list(topics)
    for role in roles:
        check_name("role", role)
    for topic in topics:
        check_name("topic", topic)
    if ttl <= 0:
        raise InvalidRequest(f"ttl must be positive, not {ttl}")
    body: dict[str, Any] = {**(claims or {}), "sub": user, "exp": int(time.time()) + ttl}
    if roles:
        body["roles"] = roles
    if topics:
        body["topics"] = topics
    if locale:
        body["locale"] = locale
    return jwt.encode(body, secret, algorithm="HS256")


def check_name(what: str, value: object) -> None:
    """A user id, role or topic the server accepts: 1 to 200 characters, no U+0000."""
    if not isinstance(value, str) or not value or len(value) > MAX_NAME or "\x00" in value:
        raise InvalidRequest(
            f"{what} must be a string of 1 to {MAX_NAME} characters without U+0000: {value!r}"
        )
