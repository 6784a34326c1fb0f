"""Templates per event type and ``POST /api/v1/events`` (backend side, API key).

An event is rendered from its type's template and then takes the one create path of
``POST /api/v1/notifications`` (:func:`tidings.web.fastpath.store_new`): the same
idempotency, group commit, expiry and live delivery.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import Response

from tidings import ids
from tidings.errors import BadRequest, NotFound
from tidings.models import isoformat, utc_from_ms
from tidings.service import MAX_PAGE
from tidings.web import events_create
from tidings.web.api import BACKEND, ApiKey, AppDep, Cursor
from tidings.web.errors import documented
from tidings.web.event_schemas import (
    EventIn,
    PreviewIn,
    PreviewOut,
    SentEventsOut,
    TemplateDeletedOut,
    TemplateIn,
    TemplateListOut,
    TemplateOut,
)
from tidings.web.responses import CreatedOut, JSONResponse
from tidings.web.schemas import TYPE_PATTERN, check_data

router = APIRouter(prefix="/api/v1")

TypePath = Annotated[
    str, Path(min_length=1, max_length=100, pattern=TYPE_PATTERN, examples=["task.assigned"])
]


# -- templates ---------------------------------------------------------------------------


@router.put(
    "/templates/{type}",
    tags=["templates"],
    response_model=TemplateOut,
    responses=documented(400, 401, 413, 422, 503),
    openapi_extra=BACKEND,
)
async def put_template(body: TemplateIn, app: AppDep, _key: ApiKey, type: TypePath) -> Response:
    """Create or replace an event type's template; every PUT raises its `version`.

    Fields are Jinja2 templates rendered in a sandbox with the event's `data` (and
    `actor`); a template that does not parse is a 422 naming the field and line.
    """
    definition = body.model_dump(mode="json")
    stored = await app.templates.put(type, definition, now_ms=app.service.clock())
    return JSONResponse(_template(stored.type, stored.version, definition, stored.updated_at))


@router.get(
    "/templates",
    tags=["templates"],
    response_model=TemplateListOut,
    responses=documented(401, 503),
    openapi_extra=BACKEND,
)
async def list_templates(app: AppDep, _key: ApiKey) -> Response:
    """Every template, by type."""
    found = await app.templates.store.all()
    items = [_template(t.type, t.version, t.definition, t.updated_at) for t in found]
    return JSONResponse({"items": items})


@router.get(
    "/templates/{type}",
    tags=["templates"],
    response_model=TemplateOut,
    responses=documented(401, 404, 422, 503),
    openapi_extra=BACKEND,
)
async def get_template(app: AppDep, _key: ApiKey, type: TypePath) -> Response:
    found = await app.templates.store.get(type)
    if found is None:
        raise NotFound(f"no template for event type {type!r}")
    return JSONResponse(_template(found.type, found.version, found.definition, found.updated_at))


@router.delete(
    "/templates/{type}",
    tags=["templates"],
    response_model=TemplateDeletedOut,
    responses=documented(401, 404, 422, 503),
    openapi_extra=BACKEND,
)
async def delete_template(app: AppDep, _key: ApiKey, type: TypePath) -> dict[str, Any]:
    """Remove a template; events of its type are then refused (`unknown_type`)."""
    if not await app.templates.delete(type):
        raise NotFound(f"no template for event type {type!r}")
    return {"type": type, "deleted": True}


@router.post(
    "/templates/{type}/preview",
    tags=["templates"],
    response_model=PreviewOut,
    responses=documented(400, 401, 404, 413, 422, 503),
    openapi_extra=BACKEND,
)
async def preview_template(
    body: PreviewIn, app: AppDep, _key: ApiKey, type: TypePath
) -> dict[str, Any]:
    """Render the template with `data` for a reader's `locale`; nothing is stored."""
    compiled = await app.templates.existing(type)
    check_data(body.data, app.settings)
    return compiled.preview(body.data, body.actor, body.locale)


def _template(type_: str, version: int, definition: dict[str, Any], updated_ms: int) -> dict:
    return {
        "type": type_,
        **definition,
        "version": version,
        "updated_at": isoformat(utc_from_ms(updated_ms)),
    }


# -- events ------------------------------------------------------------------------------


@router.post(
    "/events",
    status_code=201,
    tags=["backend"],
    response_model=CreatedOut,
    responses=documented(400, 401, 409, 413, 422, 429, 503),
    openapi_extra=BACKEND,
)
async def create_event(
    body: EventIn,
    app: AppDep,
    key: ApiKey,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    """Render the event type's template with `data` and create that notification.

    Delivered exactly like `POST /notifications` (idempotency, expiry, live push). No
    template for the type: 422 `unknown_type`; a variable missing from `data`: 422
    `missing_variable`, naming it. Nothing is stored in either case.
    """
    payload, headers = await events_create.create_event(app, body, key, idempotency_key)
    return JSONResponse(payload, status_code=201, headers=headers)


@router.get(
    "/events",
    tags=["backend"],
    response_model=SentEventsOut,
    responses=documented(400, 401, 422, 503),
    openapi_extra=BACKEND,
)
async def list_events(
    app: AppDep,
    _key: ApiKey,
    type: Annotated[str | None, Query(max_length=100, pattern=TYPE_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    before: Cursor = None,
) -> Response:
    """What was sent from events, newest first: id, type, audience, actor, created_at."""
    before_value = None
    if before is not None:
        before_value = ids.try_decode(before)
        if before_value is None:
            raise BadRequest("`before` must be a notification id (16 hex digits)")
    sent = await app.templates.store.sent(limit=limit + 1, before=before_value, type_=type)
    items = [
        {
            "id": event.id,
            "type": event.type,
            "category": event.category,
            "audience": event.audience,
            "actor": event.actor,
            "template_version": event.template_version,
            "created_at": isoformat(utc_from_ms(event.created_at_ms)),
        }
        for event in sent[:limit]
    ]
    next_before = sent[limit - 1].id if len(sent) > limit else None
    return JSONResponse({"items": items, "next_before": next_before})
