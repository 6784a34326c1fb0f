"""Plain data shared by the store, the service and the transports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

LEVELS = ("info", "success", "warning", "error")

ALL_AUDIENCE = "*"


def user_key(user: str) -> str:
    return f"u:{user}"


def role_key(role: str) -> str:
    return f"r:{role}"


def topic_channel(topic: str) -> str:
    return f"t:{topic}"


@dataclass(frozen=True, slots=True)
class Audience:
    """Who a notification is for. Roles and ``all`` are resolved when read, not stored per user."""

    users: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    all: bool = False

    def keys(self) -> list[str]:
        """Audience keys, as stored and as broker channels: ``u:<id>``, ``r:<role>``, ``*``."""
        if self.all:
            return [ALL_AUDIENCE]
        keys = [user_key(u) for u in dict.fromkeys(self.users)]
        keys += [role_key(r) for r in dict.fromkeys(self.roles)]
        return keys


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated end user, from their JWT."""

    user: str
    roles: frozenset[str] = frozenset()
    topics: tuple[str, ...] = ()
    expires_at: float | None = None

    def audience_keys(self) -> list[str]:
        """Every audience key whose notifications this user sees."""
        return [user_key(self.user), *sorted(role_key(r) for r in self.roles), ALL_AUDIENCE]


@dataclass(frozen=True, slots=True)
class NewNotification:
    """A validated create request, before the store gives it an id."""

    audience: Audience
    type: str
    level: str
    title: str
    body: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    url: str | None = None
    actor: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    type: str
    level: str
    title: str
    body: str
    data: dict[str, Any]
    url: str | None
    actor: str | None
    created_at: datetime
    expires_at: datetime | None = None
    read_at: datetime | None = None

    def to_public(self) -> dict[str, Any]:
        """The notification as the contract shows it to its recipient."""
        return {
            "id": self.id,
            "type": self.type,
            "level": self.level,
            "title": self.title,
            "body": self.body,
            "data": self.data,
            "url": self.url,
            "actor": self.actor,
            "created_at": isoformat(self.created_at),
            "expires_at": isoformat(self.expires_at) if self.expires_at else None,
            "read_at": isoformat(self.read_at) if self.read_at else None,
        }


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Notification]
    unread_count: int
    next_before: str | None


def isoformat(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_from_ms(unix_ms: int) -> datetime:
    return datetime.fromtimestamp(unix_ms / 1000, tz=UTC)
