"""The shapes of what the API takes and returns (plain dicts, typed)."""

from __future__ import annotations

from typing import Any, TypedDict


class Audience(TypedDict, total=False):
    users: list[str]
    roles: list[str]
    all: bool


class Notification(TypedDict, total=False):
    id: str
    type: str
    level: str
    title: str
    body: str
    data: dict[str, Any]
    url: str | None
    actor: str | None
    created_at: str
    expires_at: str | None
    read_at: str | None


class Created(Notification, total=False):
    to: Audience


class Page(TypedDict):
    items: list[Notification]
    unread_count: int
    next_before: str | None


Stats = dict[str, Any]
