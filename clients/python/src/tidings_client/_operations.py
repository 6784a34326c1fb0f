"""Every call of the API as an :class:`~tidings_client._core.Operation`: the request it
sends (checked first against the server's fixed limits) and how its answer is read.

Each function takes the client's :class:`Config` first; the clients expose them as
methods (``_transport.sync_method``/``async_method``), so a signature lives here once.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from tidings_client import tokens
from tidings_client._core import Operation, Request
from tidings_client.errors import InvalidRequest, NotConfigured
from tidings_client.types import Audience, Created, Page, Stats

TYPE_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")
TOPIC_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
LEVELS = frozenset({"info", "success", "warning", "error"})
READ_TOKEN_TTL = 60


@dataclass(frozen=True)
class Config:
    api_key: str | None
    jwt_secret: str | None

    def key(self) -> str:
        if not self.api_key:
            raise NotConfigured("this call needs api_key (one of the server's TIDINGS_API_KEYS)")
        return self.api_key


def _same(value: Any) -> Any:
    return value


def notify(
    config: Config,
    *,
    to: Audience | Mapping[str, Any],
    title: str,
    body: str = "",
    type: str = "notification",
    data: Mapping[str, Any] | None = None,
    url: str | None = None,
    actor: str | None = None,
    level: str = "info",
    ttl: int | None = None,
    expires_at: datetime | str | None = None,
    idempotency_key: str | None = None,
    key: str | None = None,
    actions: Sequence[Mapping[str, Any]] | None = None,
) -> Operation[Created]:
    """Create a notification for users, roles or everyone; returns it as stored.

    ``to`` is ``{"users": [...]}``, ``{"roles": [...]}`` (both may be given) or
    ``{"all": True}``. An idempotency key is generated when none is given and reused on
    every retry, so a retried call never stores twice. ``key`` replaces, in place, the
    live notification with that key and audience (progress); ``actions`` are buttons
    (``[{"id": "approve", "label": "Approve"}]``) whose clicks reach your webhook.
    """
    payload: dict[str, Any] = {
        "to": audience(to),
        "title": _text("title", title, required=True),
        "body": _text("body", body),
        "type": _type(type),
        "level": _level(level),
        "data": dict(data or {}),
        "idempotency_key": _key(idempotency_key),
    }
    payload.update(_optional(url=(url, 2000), actor=(actor, 200), key=(key, 255)))
    payload.update(_expiry(ttl, expires_at))
    if actions is not None:
        payload["actions"] = [dict(action) for action in actions]
    return Operation(Request("POST", "/api/v1/notifications", config.key(), payload), _same)


def update(config: Config, notification_id: str, **changes: Any) -> Operation[dict[str, Any]]:
    """Change ``title``, ``body``, ``data``, ``level``, ``url`` or ``actions`` of a sent
    notification for every recipient (their open clients get ``updated``)."""
    path = f"/api/v1/notifications/{quote(notification_id, safe='')}"
    return Operation(Request("PATCH", path, config.key(), dict(changes)), _same)


def retract(config: Config, notification_id: str) -> Operation[dict[str, Any]]:
    """Take a sent notification back for everyone (their open clients get ``deleted``)."""
    path = f"/api/v1/notifications/{quote(notification_id, safe='')}"
    return Operation(Request("DELETE", path, config.key()), _same)


def event(
    config: Config,
    *,
    type: str,
    to: Audience | Mapping[str, Any],
    data: Mapping[str, Any] | None = None,
    actor: str | None = None,
    ttl: int | None = None,
    expires_at: datetime | str | None = None,
    idempotency_key: str | None = None,
) -> Operation[Created]:
    """Send an event: the server renders the type's template with ``data`` (and
    ``actor``) into a notification and returns it. Retried safely like :func:`notify`."""
    payload: dict[str, Any] = {
        "type": _type(type),
        "to": audience(to),
        "data": dict(data or {}),
        "idempotency_key": _key(idempotency_key),
    }
    payload.update(_optional(actor=(actor, 200)))
    payload.update(_expiry(ttl, expires_at))
    return Operation(Request("POST", "/api/v1/events", config.key(), payload), _same)


def publish(config: Config, topic: str, data: Any) -> Operation[dict[str, Any]]:
    """Publish an ephemeral message to a topic's live subscribers (nothing stored).

    Not idempotent: retried only when the server certainly did nothing with it.
    """
    if not isinstance(topic, str) or not TOPIC_PATTERN.match(topic):
        raise InvalidRequest(f"topic must match {TOPIC_PATTERN.pattern}: {topic!r}")
    path = f"/api/v1/topics/{topic}/messages"
    request = Request("POST", path, config.key(), {"data": data}, safety="once")
    return Operation(request, _same)


def stats(config: Config) -> Operation[Stats]:
    """Live connection and delivery figures."""
    return Operation(Request("GET", "/api/v1/stats", config.key()), _same)


def list_inbox(
    config: Config,
    user: str,
    *,
    limit: int = 20,
    before: str | None = None,
    unread: bool = False,
) -> Operation[Page]:
    """A page of ``user``'s inbox, newest first (through a token minted for them)."""
    params: dict[str, Any] = {"limit": limit}
    if before:
        params["before"] = before
    if unread:
        params["unread"] = "true"
    return _as_user(config, user, "GET", "/api/v1/me/notifications", params=params)


def unread_count(config: Config, user: str) -> Operation[int]:
    """How many unread notifications ``user`` has."""
    op = _as_user(config, user, "GET", "/api/v1/me/unread-count")
    return Operation(op.request, lambda body: int(body["unread_count"]), token_auth=True)


def mark_read(config: Config, user: str, notification_id: str) -> Operation[dict[str, Any]]:
    """Mark one of ``user``'s notifications read."""
    path = f"/api/v1/me/notifications/{quote(notification_id, safe='')}/read"
    return _as_user(config, user, "POST", path)


def mark_all_read(config: Config, user: str) -> Operation[dict[str, Any]]:
    """Mark everything ``user`` has read."""
    return _as_user(config, user, "POST", "/api/v1/me/notifications/read-all")


def delete(config: Config, user: str, notification_id: str) -> Operation[dict[str, Any]]:
    """Hide one notification for ``user`` only."""
    path = f"/api/v1/me/notifications/{quote(notification_id, safe='')}"
    return _as_user(config, user, "DELETE", path)


def connections(config: Config, *, user: str | None = None) -> Operation[dict[str, Any]]:
    """Live connections on every server process (``{"items": [...]}``), of one user if given."""
    params = {"user": user} if user else {}
    return Operation(Request("GET", "/api/v1/connections", config.key(), params=params), _same)


def send_test(config: Config, user: str) -> Operation[Created]:
    """Send a test notification (type ``test``) to ``user``."""
    tokens.check_name("user", user)
    request = Request("POST", "/api/v1/test", config.key(), {"user": user}, safety="once")
    return Operation(request, _same)


def user_inbox(
    config: Config, user: str, *, roles: Iterable[str] = (), limit: int = 20
) -> Operation[Page]:
    """``user``'s inbox as they see it with ``roles``, read with the API key (operators)."""
    tokens.check_name("user", user)
    params: dict[str, Any] = {"limit": limit}
    if roles:
        params["roles"] = ",".join(roles)
    path = f"/api/v1/users/{quote(user, safe='')}/notifications"
    return Operation(Request("GET", path, config.key(), params=params), _same)


# -- preferences --------------------------------------------------------------------------

UNSET: Any = object()


def preferences(config: Config, user: str) -> Operation[dict[str, Any]]:
    """``user``'s preferences: ``{"types", "categories", "do_not_disturb_until"}``."""
    return Operation(Request("GET", _preferences_path(user), config.key()), _same)


def update_preferences(
    config: Config,
    user: str,
    *,
    types: Mapping[str, bool | Mapping[str, Any]] | None = None,
    categories: Mapping[str, bool | Mapping[str, Any]] | None = None,
    do_not_disturb_until: datetime | str | None = UNSET,
    replace: bool = False,
) -> Operation[dict[str, Any]]:
    """Merge into ``user``'s preferences (``replace=True``: replace them). A switch is
    ``{"enabled": False}`` or just ``False``; ``do_not_disturb_until=None`` ends it."""
    body: dict[str, Any] = {}
    if types is not None:
        body["types"] = _switches(types)
    if categories is not None:
        body["categories"] = _switches(categories)
    if do_not_disturb_until is not UNSET:
        until = do_not_disturb_until
        body["do_not_disturb_until"] = until.isoformat() if isinstance(until, datetime) else until
    method = "PUT" if replace else "PATCH"
    return Operation(Request(method, _preferences_path(user), config.key(), body), _same)


def _preferences_path(user: str) -> str:
    tokens.check_name("user", user)
    return f"/api/v1/users/{quote(user, safe='')}/preferences"


def _switches(values: Mapping[str, bool | Mapping[str, Any]]) -> dict[str, Any]:
    return {
        name: {"enabled": value} if isinstance(value, bool) else dict(value)
        for name, value in values.items()
    }


# -- templates and events (the server's event types) ------------------------------------


def put_template(
    config: Config,
    type: str,
    *,
    title: str,
    body: str = "",
    url: str | None = None,
    level: str = "info",
    category: str | None = None,
    critical: bool = False,
    actions: list[dict[str, Any]] | None = None,
    locales: Mapping[str, Mapping[str, str]] | None = None,
) -> Operation[dict[str, Any]]:
    """Create or replace the template of event type ``type`` (Jinja2 sources)."""
    template: dict[str, Any] = {
        "title": _text("title", title, required=True),
        "body": _text("body", body),
        "level": _level(level),
        "critical": critical,
        "actions": list(actions or []),
        "locales": {k: dict(v) for k, v in (locales or {}).items()},
    }
    if url is not None:
        template["url"] = url
    if category is not None:
        template["category"] = category
    return Operation(Request("PUT", _template_path(type), config.key(), template), _same)


def get_template(config: Config, type: str) -> Operation[dict[str, Any]]:
    """The template of event type ``type`` (``NotFound`` when there is none)."""
    return Operation(Request("GET", _template_path(type), config.key()), _same)


def templates(config: Config) -> Operation[list[dict[str, Any]]]:
    """Every template."""
    return Operation(Request("GET", "/api/v1/templates", config.key()), _items)


def delete_template(config: Config, type: str) -> Operation[dict[str, Any]]:
    """Remove a template; events of its type are then refused."""
    request = Request("DELETE", _template_path(type), config.key(), safety="once")
    return Operation(request, _same)


def preview(
    config: Config,
    type: str,
    *,
    data: Mapping[str, Any] | None = None,
    actor: str | None = None,
    locale: str | None = None,
) -> Operation[dict[str, Any]]:
    """Render ``type``'s template with ``data``: ``{"title", "body", "url"}``, nothing sent."""
    payload: dict[str, Any] = {"data": dict(data or {})}
    payload.update(_optional(actor=(actor, 200)))
    if locale is not None:
        payload["locale"] = locale
    path = _template_path(type) + "/preview"
    return Operation(Request("POST", path, config.key(), payload), _same)


def events(
    config: Config, *, type: str | None = None, limit: int = 20, before: str | None = None
) -> Operation[dict[str, Any]]:
    """What was sent from events, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if type is not None:
        params["type"] = _type(type)
    if before is not None:
        params["before"] = before
    return Operation(Request("GET", "/api/v1/events", config.key(), params=params), _same)


def _template_path(type: str) -> str:
    return f"/api/v1/templates/{_type(type)}"


def _items(body: Any) -> Any:
    return body["items"] if isinstance(body, dict) and "items" in body else body


def _as_user(
    config: Config, user: str, method: str, path: str, *, params: dict[str, Any] | None = None
) -> Operation[Any]:
    token = tokens.mint(config.jwt_secret, user, ttl=READ_TOKEN_TTL)
    return Operation(Request(method, path, token, params=params or {}), _same, token_auth=True)


# -- checks against the server's fixed limits ------------------------------------------


def audience(to: Audience | Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(to, Mapping):
        raise InvalidRequest('to must be a mapping: {"users": [...]}, {"roles": [...]}')
    unknown = set(to) - {"users", "roles", "all"}
    if unknown:
        raise InvalidRequest(f"to: unknown keys {sorted(unknown)}")
    users, roles = _names("user", to.get("users")), _names("role", to.get("roles"))
    everyone = to.get("all", False)
    if not isinstance(everyone, bool):
        raise InvalidRequest("to.all must be true or false")
    if everyone and (users or roles):
        raise InvalidRequest("to.all cannot be combined with to.users or to.roles")
    if not (everyone or users or roles):
        raise InvalidRequest("no recipients: give to.users, to.roles or to.all")
    out: dict[str, Any] = {"all": True} if everyone else {}
    if users:
        out["users"] = users
    if roles:
        out["roles"] = roles
    return out


def _names(what: str, values: Iterable[str] | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        raise InvalidRequest(f"to.{what}s must be a list, not a string")
    names = list(values)
    for name in names:
        tokens.check_name(what, name)
    return names


def _text(field: str, value: object, *, required: bool = False) -> str:
    if not isinstance(value, str) or "\x00" in value or (required and not value):
        need = "a non-empty string" if required else "a string"
        raise InvalidRequest(f"{field} must be {need} without U+0000")
    return value


def _type(value: object) -> str:
    if not isinstance(value, str) or not TYPE_PATTERN.match(value):
        raise InvalidRequest(f"type must match {TYPE_PATTERN.pattern}: {value!r}")
    return value


def _level(value: object) -> str:
    if value not in LEVELS:
        raise InvalidRequest(f"level must be one of {sorted(LEVELS)}: {value!r}")
    return str(value)


def _key(value: str | None) -> str:
    key = value if value is not None else uuid.uuid4().hex
    if not key or len(key) > 255 or "\x00" in key:
        raise InvalidRequest("idempotency_key must be 1 to 255 characters without U+0000")
    return key


def _optional(**fields: tuple[str | None, int]) -> dict[str, str]:
    out = {}
    for name, (value, limit) in fields.items():
        if value is None:
            continue
        if len(_text(name, value)) > limit:
            raise InvalidRequest(f"{name} is {len(value)} characters; the limit is {limit}")
        out[name] = value
    return out


def _expiry(ttl: int | None, expires_at: datetime | str | None) -> dict[str, Any]:
    if ttl is not None and expires_at is not None:
        raise InvalidRequest("give ttl or expires_at, not both")
    if ttl is not None:
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
            raise InvalidRequest(f"ttl must be a positive number of seconds: {ttl!r}")
        return {"ttl": ttl}
    if isinstance(expires_at, datetime):
        if expires_at.tzinfo is None:
            raise InvalidRequest("expires_at must be timezone-aware")
        return {"expires_at": expires_at.isoformat()}
    return {"expires_at": expires_at} if expires_at is not None else {}
