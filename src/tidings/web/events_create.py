"""``POST /api/v1/events``: render the type's template, then the one create path.

Answered on the create fast path (:mod:`tidings.web.fastpath`) like
``POST /api/v1/notifications``; the FastAPI route in :mod:`tidings.web.events_api`
documents it and serves the same function.
"""

from __future__ import annotations

from typing import Any

from tidings.app import App
from tidings.errors import ValidationFailed
from tidings.models import NewNotification
from tidings.templates import Rendered
from tidings.web.creating import store_new
from tidings.web.event_schemas import EventIn
from tidings.web.schemas import audience, check_data, check_texts, expiry

EVENTS_PATH = "/api/v1/events"
MAX_URL_LENGTH = 2000


async def create_event(
    app: App, body: EventIn, api_key: str | None, header_key: str | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Spend the key's create budget, render, store and publish: body and headers."""
    if app.creates is not None and api_key is not None:
        await app.charge_create(api_key)
    new = await event_notification(app, body)
    return await store_new(app, new, body, api_key, header_key)


async def event_notification(app: App, body: EventIn) -> NewNotification:
    """Check the request, render the template, and check what it rendered."""
    settings = app.settings
    to = audience(body.to, settings)
    expires_at = expiry(body)
    check_data(body.data, settings)
    compiled = await app.templates.compiled(body.type)
    rendered = compiled.render(body.data, body.actor)
    _check_rendered(rendered, app)
    return NewNotification(
        audience=to,
        type=body.type,
        level=compiled.level,
        title=rendered.default["title"],
        body=rendered.default["body"],
        data=body.data,
        url=rendered.default["url"],
        actor=body.actor,
        expires_at=expires_at,
        category=compiled.category,
        actions=rendered.actions,
        critical=compiled.critical,
        locales=rendered.locales,
        template_version=compiled.version,
        key=body.key,
    )


def _check_rendered(rendered: Rendered, app: App) -> None:
    variants = {"": rendered.default} | {
        f"locales.{locale}.": variant for locale, variant in (rendered.locales or {}).items()
    }
    texts: list[tuple[str, str | None]] = []
    for prefix, variant in variants.items():
        if not variant["title"]:
            raise ValidationFailed(f"{prefix}title: the template renders an empty title")
        check_texts(variant["title"], variant["body"], app.settings, prefix)
        url = variant["url"]
        if url is not None and len(url) > MAX_URL_LENGTH:
            raise ValidationFailed(f"{prefix}url: renders longer than {MAX_URL_LENGTH} characters")
        texts += [(prefix + name, variant[name]) for name in ("title", "body", "url")]
    for i, action in enumerate(rendered.actions or []):
        texts += [(f"actions.{i}.{name}", action.get(name)) for name in ("label", "url")]
    for name, text in texts:
        if text is not None and "\x00" in text:
            raise ValidationFailed(f"{name}: renders U+0000 (NUL), which cannot be stored")
