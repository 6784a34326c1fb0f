"""Preferences: ``/api/v1/me/preferences`` (JWT) and ``/api/v1/users/{user}/preferences``
(API key). ``GET`` reads, ``PATCH`` merges by name, ``PUT`` replaces."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field, StrictBool, StrictStr

from tidings.app import App
from tidings.auth import bearer
from tidings.errors import Forbidden, TidingsError, TooLarge, Unauthenticated
from tidings.models import Principal
from tidings.preferences import Preferences
from tidings.web.api import BACKEND, END_USER, AppDep, Authorization, Me
from tidings.web.errors import documented
from tidings.web.schemas import TYPE_PATTERN, Expiry, Strict

router = APIRouter(prefix="/api/v1")

MAX_SWITCHES = 500
"""Types and categories one user may switch, together."""

Switched = Annotated[StrictStr, Field(min_length=1, max_length=100, pattern=TYPE_PATTERN)]
UserPath = Annotated[str, Path(min_length=1, max_length=200, description="the user id (`sub`)")]


class SwitchIn(Strict):
    enabled: StrictBool


class SwitchOut(BaseModel):
    enabled: bool


class PreferencesIn(Strict):
    types: dict[Switched, SwitchIn] = Field(default_factory=dict, max_length=MAX_SWITCHES)
    categories: dict[Switched, SwitchIn] = Field(default_factory=dict, max_length=MAX_SWITCHES)
    do_not_disturb_until: Expiry = Field(
        None, description="frames carry `silent: true` until then; null: off"
    )


class PreferencesOut(BaseModel):
    types: dict[str, SwitchOut]
    categories: dict[str, SwitchOut]
    do_not_disturb_until: str | None = Field(description="ISO 8601 in UTC, or null")


DOC_ME: dict[str, Any] = {
    "tags": ["inbox"],
    "response_model": PreferencesOut,
    "openapi_extra": END_USER,
}
DOC_USER: dict[str, Any] = {
    "tags": ["backend"],
    "response_model": PreferencesOut,
    "openapi_extra": BACKEND,
}


async def backend_for(request: Request, user: UserPath, authorization: Authorization = None) -> str:
    """An API key; a user's own JWT is accepted too, another user's is a 403."""
    app: App = request.app.state.tidings
    credential = bearer(authorization)
    try:
        app.auth.api_key_id(credential)
        return user
    except Unauthenticated:
        if credential is None:
            raise
    try:
        principal = app.auth.verify_token(credential)
    except TidingsError:
        raise Unauthenticated("invalid API key", code="invalid_api_key") from None
    if principal.user != user:
        raise Forbidden("a user's token reaches only their own preferences")
    return user


async def _read(app: App, user: str) -> dict[str, Any]:
    return (await app.service.preferences(user)).to_public()


async def _write(
    app: App, user: str, body: PreferencesIn, *, merge: bool, principal: Principal | None = None
) -> dict[str, Any]:
    given = _from_body(body)
    if merge:
        current = await app.service.preferences(user)
        dnd_given = "do_not_disturb_until" in body.model_fields_set
        given = current.merged(given, dnd_given=dnd_given)
    switched = len(given.types) + len(given.categories)
    if switched > MAX_SWITCHES:
        raise TooLarge(f"{switched} types and categories; the limit is {MAX_SWITCHES}")
    stored = await app.service.set_preferences(user, given, principal)
    return stored.to_public()


def _from_body(body: PreferencesIn) -> Preferences:
    until = body.do_not_disturb_until
    return Preferences(
        types={name: switch.enabled for name, switch in body.types.items()},
        categories={name: switch.enabled for name, switch in body.categories.items()},
        do_not_disturb_until=int(until.timestamp() * 1000) if until is not None else None,
    )


# -- the user's own ------------------------------------------------------------------------


@router.get("/me/preferences", responses=documented(401, 503), **DOC_ME)
async def my_preferences(app: AppDep, me: Me) -> dict[str, Any]:
    """Types and categories switched on or off, and do-not-disturb."""
    return await _read(app, me.user)


@router.patch("/me/preferences", responses=documented(400, 401, 413, 422, 503), **DOC_ME)
async def patch_my_preferences(app: AppDep, me: Me, body: PreferencesIn) -> dict[str, Any]:
    """Merge: the types and categories named change, the others stay."""
    return await _write(app, me.user, body, merge=True, principal=me)


@router.put("/me/preferences", responses=documented(400, 401, 413, 422, 503), **DOC_ME)
async def put_my_preferences(app: AppDep, me: Me, body: PreferencesIn) -> dict[str, Any]:
    """Replace them all."""
    return await _write(app, me.user, body, merge=False, principal=me)


# -- any user's, for backends ------------------------------------------------------------


ForUser = Annotated[str, Depends(backend_for)]


@router.get("/users/{user}/preferences", responses=documented(401, 403, 422, 503), **DOC_USER)
async def user_preferences(app: AppDep, user: ForUser) -> dict[str, Any]:
    """A user's preferences, as they see them at `/me/preferences`."""
    return await _read(app, user)


@router.patch(
    "/users/{user}/preferences", responses=documented(400, 401, 403, 413, 422, 503), **DOC_USER
)
async def patch_user_preferences(app: AppDep, user: ForUser, body: PreferencesIn) -> dict[str, Any]:
    return await _write(app, user, body, merge=True)


@router.put(
    "/users/{user}/preferences", responses=documented(400, 401, 403, 413, 422, 503), **DOC_USER
)
async def put_user_preferences(app: AppDep, user: ForUser, body: PreferencesIn) -> dict[str, Any]:
    return await _write(app, user, body, merge=False)
