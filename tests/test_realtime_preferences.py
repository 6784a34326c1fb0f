"""End to end with a real server: each reader's language, muted types and categories, and
do-not-disturb, over WebSocket and SSE, live and on resume."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import orjson
import pytest
from realtime_helpers import API_KEY, WS_TRANSPORTS, ServerProcess, token, transports
from test_realtime import _sse_events, join, notify

BACKEND = {"Authorization": f"Bearer {API_KEY}"}
GREETING = {
    "title": "Hello {{ name }}",
    "category": "greetings",
    "locales": {"de": {"title": "Hallo {{ name }}"}, "fr": {"title": "Bonjour {{ name }}"}},
}


@pytest.fixture(scope="module", params=WS_TRANSPORTS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("prefs")
    process = ServerProcess(workdir, **transports(request.param)).start()
    with httpx.Client(base_url=process.http, headers=BACKEND, timeout=10) as http:
        assert http.put("/api/v1/templates/greeting", json=GREETING).status_code == 200
    yield process
    process.stop()


async def event(http: httpx.AsyncClient, to: dict, name: str = "Ada") -> str:
    response = await http.post(
        "/api/v1/events",
        headers=BACKEND,
        json={"type": "greeting", "to": to, "data": {"name": name}},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def set_preferences(http: httpx.AsyncClient, user: str, body: dict) -> None:
    response = await http.put(f"/api/v1/users/{user}/preferences", headers=BACKEND, json=body)
    assert response.status_code == 200, response.text


async def test_each_websocket_reader_gets_their_language(server, http, user) -> None:
    readers = {
        "de-AT": await join(server, f"{user}-de", locale="de-AT"),
        "fr": await join(server, f"{user}-fr", locale="fr"),
        "es": await join(server, f"{user}-es", locale="es"),
        None: await join(server, f"{user}-none"),
    }
    users = [f"{user}-de", f"{user}-fr", f"{user}-es", f"{user}-none"]
    await event(http, {"users": users})
    got = {locale: (await c.next("notification"))["notification"] for locale, c in readers.items()}
    assert {locale: n["title"] for locale, n in got.items()} == {
        "de-AT": "Hallo Ada",
        "fr": "Bonjour Ada",
        "es": "Hello Ada",
        None: "Hello Ada",
    }
    assert {n["id"] for n in got.values()} == {got[None]["id"]}
    assert all(n["category"] == "greetings" for n in got.values())
    for client in readers.values():
        await client.close()


async def test_resume_replays_in_the_readers_language(server, http, user) -> None:
    first = await event(http, {"users": [user]}, "one")
    await event(http, {"users": [user]}, "two")
    client = await join(server, user, after=first, locale="de")
    replayed = await client.next("notification")
    assert replayed["notification"]["title"] == "Hallo two"
    await client.close()


async def test_a_muted_category_is_not_pushed_until_switched_on(server, http, user) -> None:
    await set_preferences(http, user, {"categories": {"greetings": {"enabled": False}}})
    client = await join(server, user)
    await event(http, {"users": [user]}, "muted")
    plain = await notify(http, {"users": [user]}, "plain")
    assert (await client.next("notification"))["notification"]["id"] == plain

    # Switched on from the backend: the connection hears of it and delivers again.
    await set_preferences(http, user, {"categories": {"greetings": {"enabled": True}}})
    changed = await client.next("preferences")
    assert changed["preferences"]["categories"] == {"greetings": {"enabled": True}}
    await event(http, {"users": [user]}, "back")
    assert (await client.next("notification"))["notification"]["title"] == "Hello back"
    await client.close()


async def test_muting_while_connected_stops_pushes_of_broadcasts(server, http, user) -> None:
    client = await join(server, user)
    other = await join(server, f"{user}-other")
    me = {"Authorization": f"Bearer {token(user)}"}
    response = await http.patch(
        "/api/v1/me/preferences", headers=me, json={"types": {"test": {"enabled": False}}}
    )
    assert response.status_code == 200
    await client.next("preferences")
    muted = await notify(http, {"all": True}, "for everyone")
    assert (await other.next("notification"))["notification"]["id"] == muted
    greeting = await event(http, {"all": True})
    assert (await client.next("notification"))["notification"]["id"] == greeting
    for c in (client, other):
        await c.close()


async def test_do_not_disturb_makes_frames_silent(server, http, user) -> None:
    await set_preferences(http, user, {"do_not_disturb_until": "2999-01-01T00:00:00Z"})
    client = await join(server, user)
    await notify(http, {"users": [user]}, "quiet")
    frame = await client.next("notification")
    assert frame["silent"] is True
    assert frame["notification"]["title"] == "quiet"
    await set_preferences(http, user, {"do_not_disturb_until": None})
    await client.next("preferences")
    await notify(http, {"users": [user]}, "loud")
    assert "silent" not in await client.next("notification")
    await client.close()


async def test_sse_gets_the_language_silence_and_mutes_too(server, http, user) -> None:
    await set_preferences(
        http,
        user,
        {"types": {"test": {"enabled": False}}, "do_not_disturb_until": "2999-01-01T00:00:00Z"},
    )

    async def later() -> str:
        await asyncio.sleep(0.3)
        await notify(http, {"users": [user]}, "muted")
        return await event(http, {"users": [user]})

    pending = asyncio.create_task(later())
    headers = {"Authorization": f"Bearer {token(user, locale='de')}"}
    events = await _sse_events(http, "/api/v1/me/stream", headers, count=2)
    sent = await pending
    assert [e.event for e in events] == ["welcome", "notification"]
    frame = orjson.loads(events[1].data)
    assert events[1].id == sent
    assert frame["silent"] is True
    assert frame["notification"]["title"] == "Hallo Ada"
