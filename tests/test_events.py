"""POST /api/v1/events: rendered from the type's template, then created like any notification."""

from __future__ import annotations

import httpx
import pytest
from support import API_KEY, backend_headers, user_headers

TASK = {
    "title": "{{ actor }} assigned you {{ task }}",
    "body": "Due {{ due }}",
    "url": "/tasks/{{ id }}",
    "level": "warning",
    "category": "tasks",
    "actions": [
        {"id": "open", "label": "Open {{ task }}", "url": "/tasks/{{ id }}"},
        {"id": "done", "label": "Done", "url": None},
    ],
    "locales": {"de": {"title": "{{ actor }} hat dir {{ task }} zugewiesen"}},
}
DATA = {"task": "T-7", "due": "Friday", "id": 7}


@pytest.fixture
async def template(client: httpx.AsyncClient) -> dict:
    response = await client.put(
        "/api/v1/templates/task.assigned", json=TASK, headers=backend_headers()
    )
    assert response.status_code == 200, response.text
    return response.json()


async def send_event(client: httpx.AsyncClient, **fields) -> httpx.Response:
    body = {"type": "task.assigned", "to": {"users": ["alice"]}, "data": DATA} | fields
    return await client.post("/api/v1/events", json=body, headers=backend_headers())


async def inbox(app, client: httpx.AsyncClient, user: str = "alice") -> dict:
    response = await client.get("/api/v1/me/notifications", headers=user_headers(app, user))
    return response.json()


async def test_an_event_creates_the_rendered_notification(app, client, template) -> None:
    response = await send_event(client, actor="bob")
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["type"] == "task.assigned"
    assert created["title"] == "bob assigned you T-7"
    assert created["body"] == "Due Friday"
    assert created["url"] == "/tasks/7"
    assert created["level"] == "warning"
    assert created["category"] == "tasks"
    assert created["actions"] == [
        {"id": "open", "label": "Open T-7", "url": "/tasks/7"},
        {"id": "done", "label": "Done", "url": None},
    ]
    assert created["data"] == DATA
    assert created["actor"] == "bob"
    assert created["to"] == {"users": ["alice"], "roles": [], "all": False}
    listed = await inbox(app, client)
    assert [item["title"] for item in listed["items"]] == ["bob assigned you T-7"]
    assert listed["items"][0]["category"] == "tasks"


async def test_plain_notifications_have_a_null_category(app, client) -> None:
    response = await client.post(
        "/api/v1/notifications",
        json={"to": {"users": ["alice"]}, "title": "hi"},
        headers=backend_headers(),
    )
    assert response.json()["category"] is None
    assert response.json()["actions"] is None
    with_category = await client.post(
        "/api/v1/notifications",
        json={"to": {"users": ["alice"]}, "title": "hi", "category": "news"},
        headers=backend_headers(),
    )
    assert with_category.json()["category"] == "news"


async def test_an_unknown_type_stores_nothing(app, client) -> None:
    response = await send_event(client, type="nobody.knows")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unknown_type"
    assert (await inbox(app, client))["items"] == []


async def test_a_missing_variable_is_named_and_stores_nothing(app, client, template) -> None:
    response = await send_event(client, actor="bob", data={"task": "T", "id": 1})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "missing_variable"
    assert "`due`" in error["message"]
    assert (await inbox(app, client))["items"] == []
    events = await client.get("/api/v1/events", headers=backend_headers())
    assert events.json()["items"] == []


async def test_a_template_that_fails_while_rendering_is_a_422(app, client) -> None:
    await client.put(
        "/api/v1/templates/bad", json={"title": "{{ 1 / n }}"}, headers=backend_headers()
    )
    response = await send_event(client, type="bad", data={"n": 0})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "render_failed"


async def test_rendered_text_over_the_limits_is_refused(app, client) -> None:
    await client.put("/api/v1/templates/long", json={"title": "{{ t }}"}, headers=backend_headers())
    too_long = await send_event(client, type="long", data={"t": "x" * 201})
    assert too_long.status_code == 413
    assert "max_title_length" in too_long.json()["error"]["message"]
    empty = await send_event(client, type="long", data={"t": ""})
    assert empty.status_code == 422


async def test_idempotency_and_expiry_work_as_for_notifications(app, client, template) -> None:
    first = await send_event(client, actor="bob", idempotency_key="k1", ttl=60)
    again = await send_event(client, actor="bob", idempotency_key="k1", ttl=60)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["expires_at"] is not None
    other = await send_event(client, actor="eve", idempotency_key="k1", ttl=60)
    assert other.status_code == 409
    both = await send_event(client, actor="bob", ttl=60, expires_at="2999-01-01T00:00:00Z")
    assert both.status_code == 422
    assert len((await inbox(app, client))["items"]) == 1


async def test_events_list_what_was_sent_newest_first(app, client, template) -> None:
    await client.put("/api/v1/templates/hello", json={"title": "hi"}, headers=backend_headers())
    sent = [
        (await send_event(client, actor="bob")).json(),
        (await send_event(client, type="hello", to={"all": True}, data={})).json(),
        (await send_event(client, actor="carol", to={"roles": ["ops"]})).json(),
    ]
    await client.post(
        "/api/v1/notifications",
        json={"to": {"users": ["alice"]}, "title": "not an event"},
        headers=backend_headers(),
    )
    headers = backend_headers()
    page = (await client.get("/api/v1/events?limit=2", headers=headers)).json()
    assert [item["id"] for item in page["items"]] == [sent[2]["id"], sent[1]["id"]]
    newest = page["items"][0]
    assert newest["type"] == "task.assigned"
    assert newest["actor"] == "carol"
    assert newest["audience"] == {"users": [], "roles": ["ops"], "all": False}
    assert newest["template_version"] == template["version"]
    assert newest["created_at"] == sent[2]["created_at"]
    rest = await client.get(f"/api/v1/events?before={page['next_before']}", headers=headers)
    assert [item["id"] for item in rest.json()["items"]] == [sent[0]["id"]]
    assert rest.json()["next_before"] is None
    typed = await client.get("/api/v1/events?type=hello", headers=headers)
    assert [item["id"] for item in typed.json()["items"]] == [sent[1]["id"]]


@pytest.mark.parametrize(
    "body",
    [
        {"type": "task.assigned", "to": {"users": ["alice"]}, "data": {}, "title": "x"},
        {"type": "task.assigned", "to": {}, "data": DATA},
        {"type": "bad type", "to": {"users": ["alice"]}},
        {"to": {"users": ["alice"]}},
        {"type": "task.assigned", "to": {"users": ["alice"]}, "data": []},
    ],
)
async def test_bad_events_are_refused(app, client, template, body: dict) -> None:
    response = await client.post("/api/v1/events", json=body, headers=backend_headers())
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"]
    assert (await inbox(app, client))["items"] == []


async def test_events_need_an_api_key(client) -> None:
    assert (await client.post("/api/v1/events", json={})).status_code == 401
    assert (await client.get("/api/v1/events")).status_code == 401
    bad_cursor = await client.get("/api/v1/events?before=zz", headers=backend_headers())
    assert bad_cursor.status_code in (400, 422)


async def test_an_event_with_a_key_replaces_the_earlier_one_in_place(app, client, template) -> None:
    first = (await send_event(client, key="task-7", actor="bob")).json()
    again = await send_event(client, key="task-7", actor="bob", data=DATA | {"due": "Monday"})
    assert again.status_code == 201, again.text
    assert again.json()["id"] == first["id"] and again.json()["replaced"] is True
    listed = await inbox(app, client)
    assert [item["body"] for item in listed["items"]] == ["Due Monday"]


async def test_the_documented_route_creates_what_the_fast_path_does(app, client, template) -> None:
    """``POST /events`` is answered by the fast path; the FastAPI route behind it, which
    documents it, calls the same create and answers the same way if it is ever reached."""
    import orjson

    from tidings.web import events_api
    from tidings.web.event_schemas import EventIn

    tidings = app.state.tidings
    body = EventIn.model_validate(
        {"type": "task.assigned", "to": {"users": ["alice"]}, "data": DATA, "actor": "bob"}
    )
    key = tidings.auth.api_key_id(API_KEY)
    response = await events_api.create_event(body, tidings, key, None)
    assert response.status_code == 201
    created = orjson.loads(response.body)
    assert created["title"] == "bob assigned you T-7"
    [listed] = (await inbox(app, client))["items"]
    assert listed["id"] == created["id"]
