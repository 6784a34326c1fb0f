"""The sync and async clients against a real ``tidings serve`` process."""

from __future__ import annotations

import jwt
import pytest
from tidings_client import (
    AsyncTidings,
    InvalidRequest,
    NotConfigured,
    Tidings,
    TidingsError,
    Unauthenticated,
    ValidationFailed,
)


@pytest.fixture
def tidings(server, credentials):
    with Tidings(server.http, **credentials) as client:
        yield client


def test_notify_stores_once_and_the_user_lists_it(tidings, user):
    created = tidings.notify(
        to={"users": [user]}, title="Report ready", body="Q3", data={"n": 1}, url="/r/3"
    )
    assert created["title"] == "Report ready" and created["to"]["users"] == [user]
    page = tidings.list(user)
    assert [item["id"] for item in page["items"]] == [created["id"]]
    assert page["items"][0]["data"] == {"n": 1}
    assert tidings.unread_count(user) == 1


def test_the_inbox_calls_act_for_the_user(tidings, user):
    first = tidings.notify(to={"users": [user]}, title="one")
    tidings.notify(to={"users": [user]}, title="two")
    assert tidings.mark_read(user, first["id"])["unread_count"] == 1
    assert tidings.mark_all_read(user)["unread_count"] == 0
    tidings.delete(user, first["id"])
    assert [item["title"] for item in tidings.list(user)["items"]] == ["two"]
    assert tidings.list(user, unread=True)["items"] == []


def test_a_role_broadcast_reaches_a_token_with_that_role(tidings, user, server):
    tidings.notify(to={"roles": ["staff-" + user]}, title="for staff")
    token = tidings.token(user, roles=["staff-" + user])
    import httpx

    page = httpx.get(
        f"{server.http}/api/v1/me/notifications", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert [item["title"] for item in page["items"]] == ["for staff"]


def test_progress_is_replaced_by_key_changed_and_retracted(tidings, user):
    first = tidings.notify(to={"users": [user]}, title="10%", key="upload", data={"p": 10})
    again = tidings.notify(to={"users": [user]}, title="90%", key="upload", data={"p": 90})
    assert again["id"] == first["id"] and again["replaced"] is True
    actions = [{"id": "open", "label": "Open"}]
    changed = tidings.update(first["id"], title="done", actions=actions)
    assert changed["title"] == "done" and changed["actions"] == actions
    assert [item["title"] for item in tidings.list(user)["items"]] == ["done"]
    assert tidings.retract(first["id"]) == {"id": first["id"], "retracted": True}
    assert tidings.list(user)["items"] == []


def test_the_same_idempotency_key_stores_once(tidings, user):
    first = tidings.notify(to={"users": [user]}, title="once", idempotency_key="k-" + user)
    again = tidings.notify(to={"users": [user]}, title="once", idempotency_key="k-" + user)
    assert again["id"] == first["id"]
    assert tidings.unread_count(user) == 1


def test_token_claims(credentials):
    client = Tidings("http://127.0.0.1:9", **credentials)
    token = client.token("ada", roles=["staff"], topics=["room.1"], locale="de", ttl=120)
    claims = jwt.decode(token, credentials["jwt_secret"], algorithms=["HS256"])
    assert claims["sub"] == "ada" and claims["roles"] == ["staff"]
    assert claims["topics"] == ["room.1"] and claims["locale"] == "de"


def test_publish_and_stats(tidings):
    assert tidings.publish("room.1", {"x": 1}) == {"topic": "room.1", "published": True}
    assert "connections" in tidings.stats()


def test_server_errors_carry_code_message_and_status(tidings, user):
    with pytest.raises(ValidationFailed) as caught:
        tidings.notify(to={"users": [user]}, title="x", expires_at="2001-01-01T00:00:00Z")
    assert caught.value.status == 422 and caught.value.code == "invalid"
    assert "past" in caught.value.message


def test_a_wrong_api_key_is_unauthenticated(server, user):
    with Tidings(server.http, api_key="nope") as client, pytest.raises(Unauthenticated) as caught:
        client.notify(to={"users": [user]}, title="x")
    assert caught.value.status == 401 and caught.value.code == "invalid_api_key"


def test_a_wrong_secret_says_so(server, user):
    wrong = Tidings(server.http, api_key="x", jwt_secret="not-the-server-secret-at-all-00000")
    with wrong, pytest.raises(Unauthenticated) as caught:
        wrong.list(user)
    assert caught.value.code == "invalid_token" and "jwt_secret" in caught.value.message


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"to": {}}, "no recipients"),
        ({"to": {"users": []}}, "no recipients"),
        ({"to": {"all": True, "users": ["a"]}}, "cannot be combined"),
        ({"to": {"users": "alice"}}, "list"),
        ({"to": {"users": ["x" * 201]}}, "200"),
        ({"to": {"users": ["a"]}, "title": ""}, "title"),
        ({"to": {"users": ["a"]}, "type": "no spaces"}, "type"),
        ({"to": {"users": ["a"]}, "url": "u" * 2001}, "2000"),
        ({"to": {"users": ["a"]}, "level": "loud"}, "level"),
        ({"to": {"users": ["a"]}, "ttl": 5, "expires_at": "2100-01-01T00:00:00Z"}, "not both"),
    ],
)
def test_bad_input_is_refused_before_sending(kwargs, says):
    client = Tidings("http://127.0.0.1:9", api_key="k")  # nothing listens: nothing is sent
    kwargs = {"title": "t", **kwargs}
    with pytest.raises(InvalidRequest) as caught:
        client.notify(**kwargs)
    assert says in caught.value.message and caught.value.status is None
    assert isinstance(caught.value, TidingsError)


def test_tokens_need_the_secret():
    with pytest.raises(NotConfigured):
        Tidings("http://127.0.0.1:9", api_key="k").token("ada")


async def test_async_client_shares_the_behaviour(server, credentials, user):
    async with AsyncTidings(server.http, **credentials) as tidings:
        created = await tidings.notify(to={"users": [user]}, title="async")
        page = await tidings.list(user)
        assert page["items"][0]["id"] == created["id"]
        assert await tidings.unread_count(user) == 1
        with pytest.raises(InvalidRequest):
            await tidings.notify(to={}, title="x")
        assert tidings.token(user)
