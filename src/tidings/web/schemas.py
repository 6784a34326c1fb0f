"""Request bodies of the HTTP API, and the size limits that depend on settings."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictStr

from tidings.errors import TooLarge, ValidationFailed
from tidings.models import Audience, NewNotification
from tidings.settings import Settings

Level = Literal["info", "success", "warning", "error"]
Name = Field(min_length=1, max_length=200)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AudienceIn(Strict):
    users: list[StrictStr] = Field(default_factory=list, description="user ids (JWT `sub`)")
    roles: list[StrictStr] = Field(default_factory=list, description="roles (JWT `roles`)")
    all: StrictBool = Field(False, description="everyone; stored once")


class NotificationIn(Strict):
    to: AudienceIn
    type: StrictStr = Field(
        "notification",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.:\-]+$",
        examples=["task.assigned"],
    )
    level: Level = "info"
    title: StrictStr = Field(min_length=1, examples=["You have a new task"])
    body: StrictStr = ""
    data: dict[str, Any] = Field(default_factory=dict)
    url: StrictStr | None = Field(None, max_length=2000)
    actor: StrictStr | None = Field(None, max_length=200)
    expires_at: AwareDatetime | None = None
    ttl: int | None = Field(None, gt=0, le=10 * 365 * 86400, description="seconds to live")
    idempotency_key: StrictStr | None = Field(None, min_length=1, max_length=255)


class TopicMessageIn(Strict):
    data: Any = Field(..., description="any JSON value, delivered as is")


class DevTokenIn(Strict):
    user: StrictStr = Field(min_length=1, max_length=200)
    roles: list[StrictStr] = Field(default_factory=list)
    topics: list[StrictStr] = Field(default_factory=list)
    ttl: int = Field(3600, gt=0, le=86400)


def to_new_notification(body: NotificationIn, settings: Settings) -> NewNotification:
    """Check the settings-dependent limits and build the domain object."""
    audience = _audience(body.to, settings)
    _check_length("title", body.title, settings.max_title_length, "max_title_length")
    _check_length("body", body.body, settings.max_body_length, "max_body_length")
    data_size = len(orjson.dumps(body.data))
    if data_size > settings.max_data_bytes:
        raise TooLarge(
            f"data is {data_size} bytes encoded; the limit is max_data_bytes="
            f"{settings.max_data_bytes}"
        )
    return NewNotification(
        audience=audience,
        type=body.type,
        level=body.level,
        title=body.title,
        body=body.body,
        data=body.data,
        url=body.url,
        actor=body.actor,
        expires_at=_expiry(body),
    )


def request_hash(body: NotificationIn) -> str:
    """Fingerprint of what was asked, to tell a retry from a different request."""
    fields = body.model_dump(mode="json", exclude={"idempotency_key"})
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _audience(to: AudienceIn, settings: Settings) -> Audience:
    if to.all and (to.users or to.roles):
        raise ValidationFailed("`to.all` cannot be combined with `to.users` or `to.roles`")
    if not (to.all or to.users or to.roles):
        raise ValidationFailed("no recipients: give `to.users`, `to.roles` or `to.all: true`")
    for name in (*to.users, *to.roles):
        if not name or len(name) > 200:
            raise ValidationFailed("user ids and roles must be 1 to 200 characters")
    count = len(to.users) + len(to.roles)
    if count > settings.max_recipients:
        raise TooLarge(
            f"{count} recipients; the limit is max_recipients={settings.max_recipients} per call"
        )
    return Audience(users=tuple(to.users), roles=tuple(to.roles), all=to.all)


def _check_length(field: str, value: str, limit: int, setting: str) -> None:
    if len(value) > limit:
        raise TooLarge(f"{field} is {len(value)} characters; the limit is {setting}={limit}")


def _expiry(body: NotificationIn) -> datetime | None:
    if body.expires_at is not None and body.ttl is not None:
        raise ValidationFailed("give `expires_at` or `ttl`, not both")
    now = datetime.now(UTC)
    if body.ttl is not None:
        return now + timedelta(seconds=body.ttl)
    if body.expires_at is not None and body.expires_at <= now:
        raise ValidationFailed("`expires_at` is in the past")
    return body.expires_at
