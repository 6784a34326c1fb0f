"""The HTTP API: every endpoint, its happy path and its errors."""

from __future__ import annotations

import httpx
import pytest
from support import API_KEY, backend_headers, user_headers

pytestmark = pytest.mark.asyncio


async def send(client: httpx.AsyncClient, to: dict, title: str = "Hello", **fields) -> dict:
    response = await client.post(
        "/api/v1/notifications",
        json={"to": to, "title": title, **fields},
        headers=backend_headers(),
    )
    assert response.status_code == 201, response.text
    return response.json()


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error


# -- creating ----------------------------------------------------------------------------


async def test_create_returns_the_stored_notification(client: httpx.AsyncClient) -> None:
    created = await send(
        client,
        {"users": ["alice"]},
        type="task.assigned",
        level="warning",
        body="Review PR",
        data={"task": 7},
        url="https://example.test/t/7",
        actor="bob",
    )
    assert len(created["id"]) == 16
    assert created["type"] == "task.assigned"
    assert created["level"] == "warning"
    assert created["data"] == {"task": 7}
    assert created["read_at"] is None
    assert created["created_at"].endswith("Z")


async def test_recipients_see_it_in_their_inbox(app, client: httpx.AsyncClient) -> None:
    await send(client, {"users": ["alice"]}, "for alice")
    await send(client, {"roles": ["admin"]}, "for admins")
    await send(client, {"all": True}, "for everyone")
    response = await client.get(
        "/api/v1/me/notifications", headers=user_headers(app, "alice", ["admin"])
    )
    body = response.json()
    assert [i["title"] for i in body["items"]] == ["for everyone", "for admins", "for alice"]
    assert body["unread_count"] == 3
    bob = await client.get("/api/v1/me/notifications", headers=user_headers(app, "bob"))
    assert [i["title"] for i in bob.json()["items"]] == ["for everyone"]


async def test_ttl_and_expires_at_set_the_expiry(client: httpx.AsyncClient) -> None:
    created = await send(client, {"all": True}, ttl=60)
    assert created["expires_at"] is not None
    response = await client.post(
        "/api/v1/notifications",
        json={"to": {"all": True}, "title": "x", "ttl": 5, "expires_at": "2099-01-01T00:00:00Z"},
        headers=backend_headers(),
    )
    assert_error(response, 422)
    past = await client.post(
        "/api/v1/notifications",
        json={"to": {"all": True}, "title": "x", "expires_at": "2001-01-01T00:00:00Z"},
        headers=backend_headers(),
    )
    assert_error(past, 422)


async def test_any_configured_api_key_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/notifications",
        json={"to": {"all": True}, "title": "rotated"},
        headers=backend_headers("second-key"),
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_KEY}"}],
)
async def test_create_needs_a_valid_api_key(client: httpx.AsyncClient, headers: dict) -> None:
    response = await client.post(
        "/api/v1/notifications", json={"to": {"all": True}, "title": "x"}, headers=headers
    )
    assert_error(response, 401)


async def test_a_user_token_is_not_an_api_key(app, client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/notifications",
        json={"to": {"all": True}, "title": "x"},
        headers=user_headers(app, "alice"),
    )
    assert_error(response, 401)


# -- idempotency -------------------------------------------------------------------------


async def test_repeating_an_idempotent_create_returns_the_original(
    app, client: httpx.AsyncClient
) -> None:
    first = await send(client, {"users": ["alice"]}, idempotency_key="order-1")
    again = await client.post(
        "/api/v1/notifications",
        json={"to": {"users": ["alice"]}, "title": "Hello", "idempotency_key": "order-1"},
        headers=backend_headers(),
    )
    assert again.status_code == 201
    assert again.json()["id"] == first["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    inbox = await client.get("/api/v1/me/notifications", headers=user_headers(app, "alice"))
    assert len(inbox.json()["items"]) == 1


async def test_the_idempotency_key_header_works_too(client: httpx.AsyncClient) -> None:
    headers = backend_headers() | {"Idempotency-Key": "h-1"}
    body = {"to": {"all": True}, "title": "once"}
    first = await client.post("/api/v1/notifications", json=body, headers=headers)
    second = await client.post("/api/v1/notifications", json=body, headers=headers)
    assert first.json()["id"] == second.json()["id"]


async def test_reusing_a_key_with_another_body_conflicts(app, client: httpx.AsyncClient) -> None:
    await send(client, {"users": ["alice"]}, "one", idempotency_key="k")
    response = await client.post(
        "/api/v1/notifications",
        json={"to": {"users": ["alice"]}, "title": "two", "idempotency_key": "k"},
        headers=backend_headers(),
    )
    assert_error(response, 409)
    inbox = await client.get("/api/v1/me/notifications", headers=user_headers(app, "alice"))
    assert [i["title"] for i in inbox.json()["items"]] == ["one"]


async def test_idempotency_keys_are_scoped_per_api_key(client: httpx.AsyncClient) -> None:
    body = {"to": {"all": True}, "title": "x", "idempotency_key": "same"}
    first = await client.post("/api/v1/notifications", json=body, headers=backend_headers())
    other = await client.post(
        "/api/v1/notifications", json=body, headers=backend_headers("second-key")
    )
    assert first.json()["id"] != other.json()["id"]


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"to": {}, "title": "x"}, 422),
        ({"to": {"users": []}, "title": "x"}, 422),
        ({"to": {"groups": ["a"]}, "title": "x"}, 422),
        ({"to": {"users": "alice"}, "title": "x"}, 422),
        ({"to": {"users": [1]}, "title": "x"}, 422),
        ({"to": {"all": "yes"}, "title": "x"}, 422),
        ({"to": {"all": True, "users": ["a"]}, "title": "x"}, 422),
        ({"to": {"all": True}}, 422),
        ({"to": {"all": True}, "title": ""}, 422),
        ({"to": {"all": True}, "title": "x", "level": "fatal"}, 422),
        ({"to": {"all": True}, "title": "x", "data": [1, 2]}, 422),
        ({"to": {"all": True}, "title": "x", "ttl": -1}, 422),
        ({"to": {"all": True}, "title": "x", "surprise": 1}, 422),
        ({"to": {"all": True}, "title": "x", "type": "has spaces"}, 422),
        ({"to": {"all": True}, "title": "x" * 201}, 413),
        ({"to": {"all": True}, "title": "x", "body": "b" * 5001}, 413),
        ({"to": {"all": True}, "title": "x", "data": {"blob": "d" * 17000}}, 413),
        ({"to": {"users": [f"u{i}" for i in range(1001)]}, "title": "x"}, 413),
        ([], 422),
        ("just a string", 422),
    ],
)
async def test_bad_bodies_get_a_clear_error_and_store_nothing(
    app, client: httpx.AsyncClient, body: object, status: int
) -> None:
    response = await client.post("/api/v1/notifications", json=body, headers=backend_headers())
    error = assert_error(response, status)
    if status == 413:
        assert "max_" in error["message"]  # names the limit
    inbox = await client.get("/api/v1/me/notifications", headers=user_headers(app, "u1"))
    assert inbox.json()["items"] == []


async def test_malformed_json_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/notifications",
        content=b'{"to": {"all": tru',
        headers=backend_headers() | {"Content-Type": "application/json"},
    )
    assert_error(response, 400, "malformed_json")


async def test_a_huge_body_is_refused_before_parsing(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/notifications",
        content=b"x" * 300_000,
        headers=backend_headers() | {"Content-Type": "application/json"},
    )
    error = assert_error(response, 413)
    assert "max_request_bytes" in error["message"]


async def test_a_bug_while_creating_is_a_json_500_and_the_next_create_works(
    app, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = app.state.tidings.service
    create = service.create

    async def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("a bug, not the client's fault")

    monkeypatch.setattr(service, "create", broken)
    response = await client.post(
        "/api/v1/notifications", json={"to": {"all": True}, "title": "x"}, headers=backend_headers()
    )
    assert_error(response, 500, "internal")
    assert "bug" not in response.text
    monkeypatch.setattr(service, "create", create)
    await send(client, {"all": True})


async def test_unknown_routes_answer_json(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/v1/nope"), 404)
    assert_error(await client.put("/api/v1/notifications"), 405)


# -- the inbox ---------------------------------------------------------------------------


async def test_pagination_walks_newest_first(app, client: httpx.AsyncClient) -> None:
    for i in range(5):
        await send(client, {"users": ["alice"]}, f"n{i}")
    headers = user_headers(app, "alice")
    first = (await client.get("/api/v1/me/notifications?limit=2", headers=headers)).json()
    assert [i["title"] for i in first["items"]] == ["n4", "n3"]
    second = (
        await client.get(
            f"/api/v1/me/notifications?limit=2&before={first['next_before']}", headers=headers
        )
    ).json()
    assert [i["title"] for i in second["items"]] == ["n2", "n1"]
    assert second["unread_count"] == 5


async def test_bad_query_parameters_are_rejected(app, client: httpx.AsyncClient) -> None:
    headers = user_headers(app, "alice")
    assert_error(await client.get("/api/v1/me/notifications?limit=0", headers=headers), 422)
    assert_error(await client.get("/api/v1/me/notifications?limit=x", headers=headers), 422)
    assert_error(await client.get("/api/v1/me/notifications?before=zz", headers=headers), 400)


async def test_read_one_read_all_and_the_unread_filter(app, client: httpx.AsyncClient) -> None:
    a = await send(client, {"users": ["alice"]}, "a")
    await send(client, {"all": True}, "b")
    headers = user_headers(app, "alice")
    response = await client.post(f"/api/v1/me/notifications/{a['id']}/read", headers=headers)
    assert response.json()["unread_count"] == 1
    unread = await client.get("/api/v1/me/notifications?unread=true", headers=headers)
    assert [i["title"] for i in unread.json()["items"]] == ["b"]
    assert (await client.get("/api/v1/me/unread-count", headers=headers)).json() == {
        "unread_count": 1
    }
    response = await client.post("/api/v1/me/notifications/read-all", headers=headers)
    assert response.json()["unread_count"] == 0
    items = (await client.get("/api/v1/me/notifications", headers=headers)).json()["items"]
    assert all(item["read_at"] for item in items)


async def test_delete_hides_it_for_that_user_only(app, client: httpx.AsyncClient) -> None:
    everyone = await send(client, {"all": True}, "shared")
    alice, bob = user_headers(app, "alice"), user_headers(app, "bob")
    response = await client.delete(f"/api/v1/me/notifications/{everyone['id']}", headers=alice)
    assert response.status_code == 200
    assert (await client.get("/api/v1/me/notifications", headers=alice)).json()["items"] == []
    assert len((await client.get("/api/v1/me/notifications", headers=bob)).json()["items"]) == 1
    again = await client.delete(f"/api/v1/me/notifications/{everyone['id']}", headers=alice)
    assert_error(again, 404)


async def test_another_users_notification_is_simply_not_found(
    app, client: httpx.AsyncClient
) -> None:
    private = await send(client, {"users": ["alice"]}, "private")
    bob = user_headers(app, "bob")
    path = f"/api/v1/me/notifications/{private['id']}"
    missing = await client.post(f"{path}/read", headers=bob)
    unknown = await client.post("/api/v1/me/notifications/0000000000000001/read", headers=bob)
    assert missing.json() == unknown.json() | {
        "error": unknown.json()["error"] | {"message": missing.json()["error"]["message"]}
    }
    assert_error(missing, 404, "not_found")
    assert_error(await client.delete(path, headers=bob), 404)
    assert_error(await client.get(path, headers=bob), 404)
    assert_error(await client.post("/api/v1/me/notifications/not-an-id/read", headers=bob), 404)
    alice = await client.get("/api/v1/me/unread-count", headers=user_headers(app, "alice"))
    assert alice.json() == {"unread_count": 1}


async def test_get_one_notification(app, client: httpx.AsyncClient) -> None:
    created = await send(client, {"users": ["alice"]}, "one")
    response = await client.get(
        f"/api/v1/me/notifications/{created['id']}", headers=user_headers(app, "alice")
    )
    assert response.json()["title"] == "one"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-jwt", f"Bearer {API_KEY}", "Token abc"],
)
async def test_the_inbox_needs_a_valid_user_token(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.get("/api/v1/me/notifications", headers=headers)
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


# -- topics, operations, development -----------------------------------------------------


async def test_topic_messages_are_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/topics/logs.app/messages",
        json={"data": {"level": "error", "line": "boom"}},
        headers=backend_headers(),
    )
    assert response.status_code == 202
    bad = await client.post(
        "/api/v1/topics/has spaces/messages", json={"data": 1}, headers=backend_headers()
    )
    assert_error(bad, 422)
    assert_error(await client.post("/api/v1/topics/t/messages", json={"data": 1}), 401)


async def test_health_readiness_docs_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] is True
    spec = (await client.get("/openapi.json")).json()
    assert "/api/v1/notifications" in spec["paths"]
    assert "/api/v1/me/notifications/read-all" in spec["paths"]
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/metrics")).status_code == 200


async def test_dev_endpoints_mint_tokens_and_send(client: httpx.AsyncClient) -> None:
    token = (await client.post("/api/v1/dev/token", json={"user": "dana"})).json()["token"]
    sent = await client.post(
        "/api/v1/dev/notifications", json={"to": {"users": ["dana"]}, "title": "demo"}
    )
    assert sent.status_code == 201
    inbox = await client.get(
        "/api/v1/me/notifications", headers={"Authorization": f"Bearer {token}"}
    )
    assert [i["title"] for i in inbox.json()["items"]] == ["demo"]


async def test_dev_endpoints_are_off_outside_development(tmp_path) -> None:
    from support import make_settings

    from tidings.web import create_app

    application = create_app(make_settings(tmp_path, dev=False))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert_error(await client.post("/api/v1/dev/token", json={"user": "x"}), 404)
            assert_error(await client.get("/demo"), 404)


async def test_allowed_origins_may_call_the_api_from_a_browser(tmp_path) -> None:
    from support import make_settings

    from tidings.web import create_app

    application = create_app(make_settings(tmp_path, allowed_origins=["https://app.test"]))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            preflight = await client.options(
                "/api/v1/me/notifications",
                headers={
                    "Origin": "https://app.test",
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization",
                },
            )
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == "https://app.test"
            other = await client.get(
                "/api/v1/me/unread-count", headers={"Origin": "https://evil.test"}
            )
            assert "access-control-allow-origin" not in other.headers
