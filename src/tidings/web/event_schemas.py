"""Request and response bodies of templates and events (see PRODUCT.md, v1.1)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StrictBool, StrictStr

from tidings import ids
from tidings.web.schemas import (
    Category,
    Delivered,
    EventType,
    JsonObject,
    Level,
    Strict,
    Text,
)

MAX_TEMPLATE_LENGTH = 20_000
"""Characters in one template field: templates are compiled and cached per version."""
MAX_LOCALES = 50
MAX_ACTIONS = 10
LOCALE_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"

Source = Annotated[Text, Field(max_length=MAX_TEMPLATE_LENGTH)]
"""A Jinja2 template (sandboxed, strict undefined variables)."""
Locale = Annotated[StrictStr, Field(max_length=35, pattern=LOCALE_PATTERN, examples=["de-AT"])]


class LocaleIn(Strict):
    """One language's texts; a field left out falls back to the default one."""

    title: Source | None = Field(None, min_length=1)
    body: Source | None = None
    url: Source | None = None


class ActionIn(Strict):
    id: Annotated[StrictStr, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")]
    label: Source = Field(min_length=1, description="a template")
    url: Source | None = Field(None, description="a template")


class TemplateIn(Strict):
    title: Source = Field(min_length=1, examples=["{{ actor }} assigned you {{ task }}"])
    body: Source = ""
    url: Source | None = None
    level: Level = "info"
    category: Category | None = None
    critical: StrictBool = Field(False, description="ignores users' preferences")
    actions: list[ActionIn] = Field(default_factory=list, max_length=MAX_ACTIONS)
    locales: dict[Locale, LocaleIn] = Field(
        default_factory=dict,
        max_length=MAX_LOCALES,
        examples=[{"de": {"title": "{{ actor }} hat dir {{ task }} zugewiesen"}}],
    )


class TemplateOut(TemplateIn):
    type: str
    version: int = Field(ge=1, description="raised by one on every PUT")
    updated_at: datetime


class TemplateListOut(BaseModel):
    items: list[TemplateOut]


class TemplateDeletedOut(BaseModel):
    type: str
    deleted: bool


class PreviewIn(Strict):
    data: JsonObject = Field(default_factory=dict)
    actor: Text | None = Field(None, max_length=200)
    locale: Locale | None = None


class PreviewOut(BaseModel):
    title: str
    body: str
    url: str | None


class EventIn(Delivered):
    type: EventType
    data: JsonObject = Field(default_factory=dict, description="the template's variables")
    key: Text | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="replaces, in place, the live notification with this key and audience",
    )


class SentAudience(BaseModel):
    users: list[str]
    roles: list[str]
    all: bool


class SentEventOut(BaseModel):
    id: str = Field(pattern=ids.PATTERN)
    type: str
    category: str | None
    audience: SentAudience
    actor: str | None
    template_version: int
    created_at: datetime


class SentEventsOut(BaseModel):
    items: list[SentEventOut] = Field(description="newest first")
    next_before: str | None = Field(pattern=ids.PATTERN)
