"""Plain data shared by the store, the service and the transports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
    """Topic names or globs the user may subscribe to (JWT claim ``topics``)."""
    publish: tuple[str, ...] = ()
    """Topic names or globs the user may publish to (JWT claim ``publish``)."""
    expires_at: float | None = None
    locale: str | None = None
    """The JWT claim ``locale`` (``de-AT``): which variant of a notification they read."""

    def audience_keys(self) -> list[str]:
        """Every audience key whose notifications this user sees."""
        return [user_key(self.user), *sorted(role_key(r) for r in self.roles), ALL_AUDIENCE]


Variant = dict[str, Any]
"""One locale's rendering: ``{"title", "body", "url"}``."""


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
    category: str | None = None
    actions: list[dict[str, Any]] | None = None
    critical: bool = False
    locales: dict[str, Variant] | None = None
    """Rendered variants per locale (events whose template has locales)."""
    template_version: int | None = None
    """The version of the template it was rendered from; None when not from an event."""
    key: str | None = None
    """Replace key: a create with the key and audience of a live notification changes it."""


def match_locale(locales: dict[str, Any] | None, wanted: str | None) -> str | None:
    """The key of ``locales`` for ``wanted``, falling back from ``de-AT`` to ``de``; None:
    the default. Tags compare without regard to case."""
    if not locales or not wanted:
        return None
    lowered = {key.lower(): key for key in locales}
    tag = wanted.lower()
    while tag:
        found = lowered.get(tag)
        if found is not None:
            return found
        tag = tag.rpartition("-")[0]
    return None


def pick_locale(locales: dict[str, Variant] | None, wanted: str | None) -> Variant | None:
    """The variant for ``wanted`` (see :func:`match_locale`); None: the default."""
    key = match_locale(locales, wanted)
    return None if key is None or locales is None else locales[key]


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
    category: str | None = None
    actions: list[dict[str, Any]] | None = None
    critical: bool = False
    locales: dict[str, Variant] | None = None
    updated_at: datetime | None = None
    """When the backend last changed it (PATCH, or a create with its key); None: never."""
    archived_at: datetime | None = None
    """For this user: when they archived it (None: in the inbox)."""
    snoozed_until: datetime | None = None
    """For this user: hidden until then (None: not snoozed, or woken already)."""

    def to_public(self, locale: str | None = None) -> dict[str, Any]:
        """The notification as the contract shows it to its recipient, in their ``locale``."""
        public = {
            "id": self.id,
            "type": self.type,
            "level": self.level,
            "category": self.category,
            "title": self.title,
            "body": self.body,
            "data": self.data,
            "url": self.url,
            "actions": self.actions,
            "actor": self.actor,
            "created_at": isoformat(self.created_at),
            "expires_at": isoformat(self.expires_at) if self.expires_at else None,
            "read_at": isoformat(self.read_at) if self.read_at else None,
        }
        # Shown only when set, so the frames of untouched notifications stay as they were.
        if self.updated_at is not None:
            public["updated_at"] = isoformat(self.updated_at)
        if self.archived_at is not None:
            public["archived_at"] = isoformat(self.archived_at)
        if self.snoozed_until is not None:
            public["snoozed_until"] = isoformat(self.snoozed_until)
        variant = pick_locale(self.locales, locale)
        if variant is not None:
            public.update(variant)
        return public

    def content(self, locale: str | None = None) -> dict[str, Any]:
        """What the backend may change, without this user's read state: an ``updated``
        frame from the log, which every recipient shares."""
        public = self.to_public(locale)
        for personal in ("read_at", "archived_at", "snoozed_until"):
            public.pop(personal, None)
        return public


@dataclass(frozen=True, slots=True)
class InboxFilter:
    """What a list shows: the archive instead of the inbox, and types, categories and
    levels (each empty: any)."""

    archived: bool = False
    types: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()


INBOX = InboxFilter()


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Notification]
    unread_count: int
    next_before: str | None


LATEST = datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)
"""The latest moment tidings accepts or shows: the end of year 9999 in UTC.

The one rule for dates: a request's ``expires_at`` must fall on or before it once
converted to UTC (a later one is a 422), which keeps it representable as a Python
datetime and in unix milliseconds. Rendering clamps anything a database holds outside
``[1970, LATEST]`` instead of failing, so no stored row can break an inbox."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_MS = (LATEST - EPOCH) // timedelta(milliseconds=1)


def isoformat(moment: datetime) -> str:
    try:
        moment = moment.astimezone(UTC)
    except (OverflowError, ValueError):  # beyond year 9999 (or before year 1) in UTC
        moment = LATEST if moment.year > 1970 else EPOCH
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_from_ms(unix_ms: int) -> datetime:
    """The moment of a stored timestamp, clamped to ``[1970, LATEST]``."""
    return EPOCH + timedelta(milliseconds=min(max(unix_ms, 0), LATEST_MS))
