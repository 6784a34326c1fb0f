"""Request bodies of the HTTP API, and the size limits that depend on settings."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

from tidings.errors import TooLarge, ValidationFailed
from tidings.models import LATEST, Audience, NewNotification
from tidings.settings import Settings

Level = Literal["info", "success", "warning", "error"]
MAX_KEY_LENGTH = 255


def _storable(value: str) -> str:
    """Text the database keeps as given: PostgreSQL cannot store U+0000 in a text column."""
    if "\x00" in value:
        raise ValueError("must not contain U+0000 (NUL)")
    return value


def _plain_json(value: Any) -> Any:
    """A value sent to clients exactly as given: one that orjson encodes (integers within
    64 bits, no lone surrogates, nesting within its depth limit) with finite numbers
    (orjson would write NaN and Infinity as null)."""
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"not encodable as JSON ({exc})") from None
    if not _finite(value):
        raise ValueError("numbers must be finite: NaN and Infinity are not JSON")
    return value


def _finite(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _utc_until_latest(value: datetime | None) -> datetime | None:
    """In UTC, and not after :data:`~tidings.models.LATEST` (the end of year 9999)."""
    if value is None:
        return None
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # past datetime.max once in UTC
        value = datetime.max.replace(tzinfo=UTC)
    if value > LATEST:
        raise ValueError("must not be later than 9999-12-31T23:59:59.999Z")
    return value


Text = Annotated[StrictStr, AfterValidator(_storable)]
"""A string stored in a text column."""
Name = Annotated[Text, Field(min_length=1, max_length=200)]
"""A user id or a role."""
JsonObject = Annotated[dict[str, Any], AfterValidator(_plain_json)]
JsonValue = Annotated[Any, AfterValidator(_plain_json)]
Expiry = Annotated[AwareDatetime | None, AfterValidator(_utc_until_latest)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AudienceIn(Strict):
    users: list[Name] = Field(default_factory=list, description="user ids (JWT `sub`)")
    roles: list[Name] = Field(default_factory=list, description="roles (JWT `roles`)")
    all: StrictBool = Field(False, description="everyone; stored once")


TYPE_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
EventType = Annotated[
    StrictStr, Field(min_length=1, max_length=100, pattern=TYPE_PATTERN, examples=["task.assigned"])
]
Category = Annotated[
    StrictStr, Field(min_length=1, max_length=100, pattern=TYPE_PATTERN, examples=["tasks"])
]


class Delivered(Strict):
    """What every create request has: who it is for, how long it lives, its retry key."""

    to: AudienceIn
    actor: Text | None = Field(None, max_length=200)
    expires_at: Expiry = Field(None, description="in the future, at most year 9999 in UTC")
    ttl: StrictInt | None = Field(None, gt=0, le=10 * 365 * 86400, description="seconds to live")
    idempotency_key: Text | None = Field(None, min_length=1, max_length=MAX_KEY_LENGTH)


MAX_ACTIONS = 10
ActionId = Annotated[StrictStr, Field(min_length=1, max_length=100, pattern=TYPE_PATTERN)]


class ActionIn(Strict):
    """A button: without ``url`` a click reaches the backend as a ``notification.action``
    webhook; with it, the client opens the url."""

    id: ActionId = Field(examples=["approve"])
    label: Text = Field(min_length=1, max_length=200, examples=["Approve"])
    url: Text | None = Field(None, max_length=2000)


class NotificationIn(Delivered):
    type: EventType = "notification"
    level: Level = "info"
    category: Category | None = None
    title: Text = Field(min_length=1, examples=["You have a new task"])
    body: Text = ""
    data: JsonObject = Field(default_factory=dict)
    url: Text | None = Field(None, max_length=2000)
    actions: list[ActionIn] | None = Field(None, max_length=MAX_ACTIONS)
    key: Text | None = Field(
        None,
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description="replaces, in place, the live notification with this key and audience",
        examples=["upload-17"],
    )


IMMUTABLE = ("to", "type", "category", "actor", "expires_at", "ttl", "key", "idempotency_key")
"""Fields of a notification that cannot change after sending (PATCH names them: 422)."""


class NotificationPatchIn(Strict):
    """What a backend may change after sending; every recipient's clients get ``updated``."""

    title: Text | None = Field(None, min_length=1)
    body: Text | None = None
    data: JsonObject | None = None
    level: Level | None = None
    url: Text | None = Field(None, max_length=2000)
    actions: list[ActionIn] | None = Field(None, max_length=MAX_ACTIONS)

    @model_validator(mode="before")
    @classmethod
    def _only_mutable(cls, value: Any) -> Any:
        if isinstance(value, dict):
            fixed = [name for name in IMMUTABLE if name in value]
            if fixed:
                raise ValueError(f"cannot change after sending: {', '.join(fixed)}")
        return value


class SnoozeIn(Strict):
    until: AwareDatetime = Field(
        description="when it comes back, unread: in the future, within the retention age"
    )


class TopicMessageIn(Strict):
    data: JsonValue = Field(..., description="any JSON value, delivered as is")


class DevTokenIn(Strict):
    user: StrictStr = Field(min_length=1, max_length=200)
    roles: list[StrictStr] = Field(default_factory=list)
    topics: list[StrictStr] = Field(default_factory=list)
    publish: list[StrictStr] = Field(default_factory=list)
    ttl: int = Field(3600, gt=0, le=86400)


def to_new_notification(body: NotificationIn, settings: Settings) -> NewNotification:
    """Check the settings-dependent limits and build the domain object."""
    to = audience(body.to, settings)
    check_texts(body.title, body.body, settings)
    check_data(body.data, settings)
    return NewNotification(
        audience=to,
        type=body.type,
        level=body.level,
        title=body.title,
        body=body.body,
        data=body.data,
        url=body.url,
        actor=body.actor,
        expires_at=expiry(body),
        category=body.category,
        actions=[a.model_dump(exclude_none=True) for a in body.actions] if body.actions else None,
        key=body.key,
    )


def to_changes(body: NotificationPatchIn, settings: Settings) -> dict[str, Any]:
    """The fields a PATCH sets, checked against the same limits as a create."""
    fields = body.model_dump(exclude_unset=True)
    for name in ("title", "level", "data"):
        if name in fields and fields[name] is None:
            raise ValidationFailed(f"`{name}` cannot be null")
    if not fields:
        raise ValidationFailed("nothing to change: give title, body, data, level, url or actions")
    check_texts(fields.get("title", ""), fields.get("body") or "", settings)
    if fields.get("body") is None and "body" in fields:
        fields["body"] = ""
    if "data" in fields:
        check_data(fields["data"], settings)
    if "actions" in fields:
        given = body.actions or []
        fields["actions"] = [a.model_dump(exclude_none=True) for a in given] or None
    return fields


def check_texts(title: str, body: str, settings: Settings, prefix: str = "") -> None:
    _check_length(prefix + "title", title, settings.max_title_length, "max_title_length")
    _check_length(prefix + "body", body, settings.max_body_length, "max_body_length")


def check_data(data: dict[str, Any], settings: Settings) -> None:
    data_size = len(orjson.dumps(data))
    if data_size > settings.max_data_bytes:
        raise TooLarge(
            f"data is {data_size} bytes encoded; the limit is max_data_bytes="
            f"{settings.max_data_bytes}"
        )


def idempotency_key(body: Delivered, header: str | None) -> str | None:
    """The key of the body, else of the ``Idempotency-Key`` header, by the body's rules."""
    if header:
        if len(header) > MAX_KEY_LENGTH:
            raise ValidationFailed(f"Idempotency-Key: at most {MAX_KEY_LENGTH} characters")
        try:
            _storable(header)
        except ValueError as exc:
            raise ValidationFailed(f"Idempotency-Key: {exc}") from None
    return body.idempotency_key or header or None


def request_hash(body: Delivered) -> str:
    """Fingerprint of what was asked, to tell a retry from a different request."""
    fields = body.model_dump(mode="json", exclude={"idempotency_key"})
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


def audience(to: AudienceIn, settings: Settings) -> Audience:
    if to.all and (to.users or to.roles):
        raise ValidationFailed("`to.all` cannot be combined with `to.users` or `to.roles`")
    if not (to.all or to.users or to.roles):
        raise ValidationFailed("no recipients: give `to.users`, `to.roles` or `to.all: true`")
    count = len(to.users) + len(to.roles)
    if count > settings.max_recipients:
        raise TooLarge(
            f"{count} recipients; the limit is max_recipients={settings.max_recipients} per call"
        )
    return Audience(users=tuple(to.users), roles=tuple(to.roles), all=to.all)


def _check_length(field: str, value: str, limit: int, setting: str) -> None:
    if len(value) > limit:
        raise TooLarge(f"{field} is {len(value)} characters; the limit is {setting}={limit}")


def expiry(body: Delivered) -> datetime | None:
    if body.expires_at is not None and body.ttl is not None:
        raise ValidationFailed("give `expires_at` or `ttl`, not both")
    now = datetime.now(UTC)
    if body.ttl is not None:
        return now + timedelta(seconds=body.ttl)
    if body.expires_at is not None and body.expires_at <= now:
        raise ValidationFailed("`expires_at` is in the past")
    return body.expires_at
