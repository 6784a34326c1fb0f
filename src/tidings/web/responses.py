"""Response bodies of the HTTP API, as the OpenAPI document describes them, and the JSON
response class that renders them with orjson (FastAPI's own JSONResponse is deprecated).

The routes build their bodies as plain dicts (``Notification.to_public()``, ``page_body``)
for speed; these models describe those dicts, and the fuzz suite (``tests/test_fuzz.py``)
checks every response against them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field
from starlette.responses import Response

from tidings import ids
from tidings.web.schemas import AudienceIn, Level

Id = Field(pattern=ids.PATTERN, examples=["01a1fcb37be50003"])


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid"], description="stable, for programs")
    message: str = Field(description="for people; names the field or limit at fault")


class ErrorBody(BaseModel):
    """Every error, whatever its status."""

    error: ErrorDetail


class NotificationOut(BaseModel):
    id: str = Id
    type: str
    level: Level
    category: str | None = Field(description="from the event's template, or as given")
    title: str
    body: str
    data: dict[str, Any]
    url: str | None
    actions: list[dict[str, Any]] | None = Field(description="from the event's template")
    actor: str | None
    created_at: datetime
    expires_at: datetime | None
    read_at: datetime | None = Field(description="for this user; null while unread")
    updated_at: datetime | None = Field(
        None, description="when the backend last changed it; absent if never"
    )
    archived_at: datetime | None = Field(None, description="for this user; absent: in the inbox")
    snoozed_until: datetime | None = Field(None, description="for this user; absent: not snoozed")


class CreatedOut(NotificationOut):
    to: AudienceIn = Field(description="the audience, as given")
    replaced: bool | None = Field(
        None, description="true when a create with `key` changed an earlier one in place"
    )


class ArchivedReadOut(BaseModel):
    ids: list[str] = Field(description="what was archived, newest first")
    unread_count: int = Field(ge=0)


class ActedOut(BaseModel):
    id: str = Id
    action: str
    accepted: Literal[True]


class RetractedOut(BaseModel):
    id: str = Id
    retracted: Literal[True]


class PageOut(BaseModel):
    items: list[NotificationOut] = Field(description="newest first")
    unread_count: int = Field(ge=0)
    next_before: str | None = Field(
        pattern=ids.PATTERN, description="`before` of the next page; null on the last one"
    )


class UnreadCountOut(BaseModel):
    unread_count: int = Field(ge=0)


class ReadAllOut(BaseModel):
    read_through: str | None = Field(pattern=ids.PATTERN, description="newest id now read")
    unread_count: int = Field(ge=0)


class ReadOneOut(BaseModel):
    id: str = Id
    unread_count: int = Field(ge=0)


class DeletedOut(BaseModel):
    id: str = Id
    deleted: Literal[True]


class PublishedOut(BaseModel):
    topic: str
    published: Literal[True]
