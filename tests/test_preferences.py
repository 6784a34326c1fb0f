"""Preferences and locales: what each reader sees, in lists, counts and on the store."""

from __future__ import annotations

import httpx
import pytest
from support import backend_headers, user_headers

from tidings.models import Audience, NewNotification, Principal
from tidings.preferences import Preferences
from tidings.store import PendingCreate, SqlStore

TASK = {
    "title": "{{ actor }} assigned you {{ task }}",
    "category": "tasks",
    "locales": {
        "de": {"title": "{{ actor }} hat dir {{ task }} zugewiesen"},
        "fr-CA": {"title": "{{ actor }} vous a assigné {{ task }}"},
    },
}
EMPTY = {"types": {}, "categories": {}, "do_not_disturb_until": None}


async def send(client: httpx.AsyncClient, title: str, **fields) -> dict:
    body = {"to": {"all": True}, "title": title} | fields
    response = await client.post("/api/v1/notifications", json=body, headers=backend_headers())
    assert response.status_code == 201, response.text
    return response.json()


async def titles(app, client: httpx.AsyncClient, user: str, **claims) -> list[str]:
    response = await client.get(
        "/api/v1/me/notifications", headers=user_headers(app, user, **claims)
    )
    return [item["title"] for item in response.json()["items"]]


async def count(app, client: httpx.AsyncClient, user: str) -> int:
    response = await client.get("/api/v1/me/unread-count", headers=user_headers(app, user))
    return response.json()["unread_count"]


# -- locales --------------------------------------------------------------------------------


async def test_each_reader_gets_their_language_from_one_record(app, client) -> None:
    await client.put("/api/v1/templates/task.assigned", json=TASK, headers=backend_headers())
    created = await client.post(
        "/api/v1/events",
        json={"type": "task.assigned", "to": {"all": True}, "actor": "bob", "data": {"task": "T"}},
        headers=backend_headers(),
    )
    assert created.json()["title"] == "bob assigned you T"
    assert await titles(app, client, "anna", locale="de-AT") == ["bob hat dir T zugewiesen"]
    assert await titles(app, client, "jean", locale="FR-ca") == ["bob vous a assigné T"]
    assert await titles(app, client, "jo", locale="fr") == ["bob assigned you T"]
    assert await titles(app, client, "sam") == ["bob assigned you T"]
    one = await client.get(
        f"/api/v1/me/notifications/{created.json()['id']}",
        headers=user_headers(app, "anna", locale="de"),
    )
    assert one.json()["title"] == "bob hat dir T zugewiesen"


async def test_a_bad_locale_claim_is_refused(app, client) -> None:
    token = app.state.tidings.auth.mint("anna", locale="x" * 36)
    response = await client.get(
        "/api/v1/me/notifications", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401


# -- the API ----------------------------------------------------------------------------------


async def test_preferences_start_empty_and_patch_merges(app, client) -> None:
    headers = user_headers(app, "alice")
    assert (await client.get("/api/v1/me/preferences", headers=headers)).json() == EMPTY
    first = await client.patch(
        "/api/v1/me/preferences",
        json={"types": {"chat": {"enabled": False}}, "do_not_disturb_until": "2999-01-01T09:00Z"},
        headers=headers,
    )
    assert first.status_code == 200, first.text
    second = await client.patch(
        "/api/v1/me/preferences", json={"categories": {"news": {"enabled": False}}}, headers=headers
    )
    assert second.json() == {
        "types": {"chat": {"enabled": False}},
        "categories": {"news": {"enabled": False}},
        "do_not_disturb_until": "2999-01-01T09:00:00.000Z",
    }
    replaced = await client.put(
        "/api/v1/me/preferences", json={"types": {"chat": {"enabled": True}}}, headers=headers
    )
    assert replaced.json() == EMPTY | {"types": {"chat": {"enabled": True}}}
    assert (await client.get("/api/v1/me/preferences", headers=headers)).json() == replaced.json()


async def test_backends_read_and_write_any_users_preferences(app, client) -> None:
    url = "/api/v1/users/alice/preferences"
    body = {"categories": {"news": {"enabled": False}}}
    response = await client.put(url, json=body, headers=backend_headers())
    assert response.status_code == 200, response.text
    mine = await client.get("/api/v1/me/preferences", headers=user_headers(app, "alice"))
    assert mine.json()["categories"] == {"news": {"enabled": False}}
    assert (await client.get(url, headers=backend_headers())).json() == mine.json()


async def test_another_users_preferences_are_forbidden_with_a_jwt(app, client) -> None:
    url = "/api/v1/users/alice/preferences"
    other = await client.get(url, headers=user_headers(app, "mallory"))
    assert other.status_code == 403
    changed = await client.patch(url, json={"types": {}}, headers=user_headers(app, "mallory"))
    assert changed.status_code == 403
    assert (await client.get(url)).status_code == 401
    own = await client.get(url, headers=user_headers(app, "alice"))
    assert own.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"types": {"chat": {"enabled": "no"}}},
        {"types": {"chat": False}},
        {"types": {"bad type": {"enabled": False}}},
        {"locale": "de"},
        {"do_not_disturb_until": "tomorrow"},
        {"do_not_disturb_until": "2030-01-01T00:00:00"},
    ],
)
async def test_bad_preferences_change_nothing(app, client, body: dict) -> None:
    headers = user_headers(app, "alice")
    response = await client.patch("/api/v1/me/preferences", json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert (await client.get("/api/v1/me/preferences", headers=headers)).json() == EMPTY


# -- what they do -----------------------------------------------------------------------------


async def test_a_disabled_type_or_category_is_neither_listed_nor_counted(app, client) -> None:
    await send(client, "chat", type="chat")
    await send(client, "news", type="post", category="news")
    await send(client, "plain")
    await client.patch(
        "/api/v1/me/preferences",
        json={"types": {"chat": {"enabled": False}}, "categories": {"news": {"enabled": False}}},
        headers=user_headers(app, "alice"),
    )
    assert await titles(app, client, "alice") == ["plain"]
    assert await count(app, client, "alice") == 1
    # Only for that user: the broadcast is one record, and bob sees all of it.
    assert await titles(app, client, "bob") == ["plain", "news", "chat"]
    assert await count(app, client, "bob") == 3
    # Switched on again, it is back.
    await client.patch(
        "/api/v1/me/preferences",
        json={"types": {"chat": {"enabled": True}}},
        headers=user_headers(app, "alice"),
    )
    assert await titles(app, client, "alice") == ["plain", "chat"]


async def test_critical_templates_ignore_preferences(app, client) -> None:
    await client.put(
        "/api/v1/templates/outage",
        json={"title": "outage", "category": "ops", "critical": True},
        headers=backend_headers(),
    )
    await client.post(
        "/api/v1/events", json={"type": "outage", "to": {"all": True}}, headers=backend_headers()
    )
    await client.put(
        "/api/v1/users/alice/preferences",
        json={"types": {"outage": {"enabled": False}}, "categories": {"ops": {"enabled": False}}},
        headers=backend_headers(),
    )
    assert await titles(app, client, "alice") == ["outage"]


# -- the store, on SQLite and PostgreSQL -----------------------------------------------------


async def test_store_keeps_preferences_and_filters_by_them(store: SqlStore) -> None:
    alice, bob = Principal("alice"), Principal("bob")
    items = [
        NewNotification(Audience(all=True), type="chat", level="info", title="a"),
        NewNotification(Audience(roles=("x",)), type="post", level="info", title="b"),
        NewNotification(Audience(users=("alice", "bob")), "post", "info", "c", category="news"),
        NewNotification(Audience(all=True), "chat", "info", "d", category="news", critical=True),
    ]
    await store.insert([PendingCreate(item) for item in items], now_ms=1_700_000_000_000)
    muted = Preferences(types={"chat": False, "post": True}, categories={"news": False})
    await store.set_preferences("alice", muted, now_ms=1)
    assert await store.preferences("alice") == muted
    assert await store.preferences("bob") == Preferences()
    now = 1_700_000_000_001
    page = await store.page(alice, now_ms=now, limit=10)
    assert [item.title for item in page.items] == ["d"]
    assert page.unread_count == 1
    assert await store.unread_count(alice, now_ms=now) == 1
    replayed = await store.after(alice, 0, now_ms=now, limit=10) or []
    assert [entry.notification.title for entry in replayed] == ["d"]
    assert await store.unread_count(bob, now_ms=now) == 3
    await store.set_preferences("alice", Preferences(), now_ms=2)
    assert await store.unread_count(alice, now_ms=now) == 3
