"""Templates, events and the operators' calls against a real server."""

from __future__ import annotations

import pytest
from tidings_client import AsyncTidings, NotFound, Tidings, ValidationFailed


@pytest.fixture
def tidings(server, credentials):
    with Tidings(server.http, **credentials) as client:
        yield client


def test_an_event_renders_its_template_for_the_user(tidings, user):
    kind = "task.assigned-" + user
    stored = tidings.put_template(
        kind,
        title="{{ actor }} assigned you {{ task }}",
        url="/tasks/{{ id }}",
        category="tasks",
        locales={"de": {"title": "{{ actor }} hat dir {{ task }} zugewiesen"}},
    )
    assert stored["version"] >= 1
    assert tidings.get_template(kind)["title"] == "{{ actor }} assigned you {{ task }}"
    assert kind in [t["type"] for t in tidings.templates()]
    preview = tidings.preview(kind, data={"task": "Docs", "id": 3}, actor="Ada", locale="de")
    assert preview["title"] == "Ada hat dir Docs zugewiesen"
    created = tidings.event(type=kind, to={"users": [user]}, data={"task": "Docs", "id": 3},
                            actor="Ada")  # fmt: skip
    assert created["title"] == "Ada assigned you Docs" and created["url"] == "/tasks/3"
    assert [item["id"] for item in tidings.list(user)["items"]] == [created["id"]]
    assert tidings.events(type=kind)["items"][0]["id"] == created["id"]
    with pytest.raises(ValidationFailed) as caught:
        tidings.event(type=kind, to={"users": [user]}, data={})
    assert caught.value.code == "missing_variable"
    tidings.delete_template(kind)
    with pytest.raises(NotFound):
        tidings.get_template(kind)


def test_operators_calls(tidings, user):
    sent = tidings.send_test(user)
    assert sent["type"] == "test"
    assert tidings.user_inbox(user)["items"][0]["id"] == sent["id"]
    assert tidings.connections(user=user)["items"] == []


async def test_the_async_client_has_them_too(server, credentials, user):
    async with AsyncTidings(server.http, **credentials) as tidings:
        sent = await tidings.send_test(user)
        page = await tidings.user_inbox(user, roles=["staff"])
    assert page["items"][0]["id"] == sent["id"]


def test_preferences_switch_a_type_off_for_a_user(tidings, user):
    tidings.update_preferences(user, types={"digest": False})
    assert tidings.preferences(user)["types"] == {"digest": {"enabled": False}}
    tidings.notify(to={"users": [user]}, type="digest", title="muted")
    tidings.notify(to={"users": [user]}, type="alert", title="heard")
    assert [item["title"] for item in tidings.list(user)["items"]] == ["heard"]
    replaced = tidings.update_preferences(user, categories={}, replace=True)
    assert replaced["types"] == {} and replaced["do_not_disturb_until"] is None
    assert tidings.update_preferences(user, do_not_disturb_until="2100-01-01T00:00:00Z")[
        "do_not_disturb_until"
    ].startswith("2100-01-01")
