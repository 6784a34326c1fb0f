"""Bad input: whatever a client sends is answered as the client's error (a 4xx with a JSON
error body, never a 5xx), on SQLite and on PostgreSQL; and nothing stored breaks a reply.

The rules tested here are stated once in the code: ids in ``tidings.ids`` (16 hex digits,
at most 63 bits), dates in ``tidings.models.LATEST`` (at most the end of year 9999 in
UTC), text and JSON values in ``tidings.web.schemas`` (no U+0000 in stored text; JSON
that orjson encodes, with finite numbers), body sizes in ``tidings.web.errors.read_body``.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from realtime_helpers import API_KEY as SERVER_API_KEY
from realtime_helpers import ServerProcess
from support import backend_headers, make_settings, user_headers
from test_api import assert_error

from tidings.errors import CloseCode, ValidationFailed
from tidings.models import Audience, NewNotification, Principal
from tidings.store import PendingCreate
from tidings.web import create_app

HUGE_ID = "ffffffffffffffff"
"""Sixteen hex digits, but 2^64 - 1: beyond the store's signed 64-bit ids."""


@pytest.fixture
async def db_app(tmp_path, database_url: str) -> AsyncIterator:
    """The app on SQLite and on PostgreSQL (the same database for the whole session)."""
    application = create_app(make_settings(tmp_path, database_url=database_url))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def db_client(db_app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=db_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def user() -> str:
    """A user of this test only: the PostgreSQL database is shared by the session."""
    return f"u-{uuid.uuid4().hex[:10]}"


async def create(client: httpx.AsyncClient, body: dict) -> httpx.Response:
    return await client.post("/api/v1/notifications", json=body, headers=backend_headers())


async def inbox(client: httpx.AsyncClient, app, user: str) -> list[dict]:
    response = await client.get("/api/v1/me/notifications", headers=user_headers(app, user))
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def websocket_close(app, query: str) -> tuple[int, str]:
    """Open ``/ws?<query>`` on the ASGI app; the close code and reason it answers with."""
    incoming: asyncio.Queue[dict] = asyncio.Queue()
    incoming.put_nowait({"type": "websocket.connect"})
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "websocket.close":
            incoming.put_nowait({"type": "websocket.disconnect", "code": message["code"]})

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "subprotocols": [],
    }
    await asyncio.wait_for(app(scope, incoming.get, send), 10)
    closes = [m for m in sent if m["type"] == "websocket.close"]
    assert closes, sent
    return closes[0]["code"], closes[0].get("reason", "")


# -- ids (defect 6) --------------------------------------------------------------------------


async def test_ids_from_2_63_up_are_not_found(db_app, db_client, user) -> None:
    """16 hex digits above 2^63 - 1 are no id: 404 on a path, as any unknown id."""
    headers = user_headers(db_app, user)
    path = f"/api/v1/me/notifications/{HUGE_ID}"
    assert_error(await db_client.get(path, headers=headers), 404, "not_found")
    assert_error(await db_client.post(f"{path}/read", headers=headers), 404, "not_found")
    assert_error(await db_client.delete(path, headers=headers), 404, "not_found")


@pytest.mark.parametrize("cursor", [HUGE_ID, "8000000000000000", "7FFFFFFFFFFFFFFF"])
async def test_a_cursor_from_2_63_up_is_a_bad_request(db_app, db_client, user, cursor) -> None:
    response = await db_client.get(
        f"/api/v1/me/notifications?before={cursor}", headers=user_headers(db_app, user)
    )
    assert_error(response, 400, "bad_request")


async def test_the_largest_id_is_still_an_id(db_app, db_client, user) -> None:
    headers = user_headers(db_app, user)
    largest = "7fffffffffffffff"
    assert_error(await db_client.get(f"/api/v1/me/notifications/{largest}", headers=headers), 404)
    page = await db_client.get(f"/api/v1/me/notifications?before={largest}", headers=headers)
    assert page.status_code == 200


async def test_resuming_after_2_63_is_refused_on_both_transports(db_app, db_client, user) -> None:
    """WebSocket: close 4400 (reconnect without `after`), not 1012 (come back the same way)."""
    token = db_app.state.tidings.auth.mint(user)
    code, reason = await websocket_close(db_app, f"token={token}&after={HUGE_ID}")
    assert code == CloseCode.INVALID_AFTER == 4400
    assert "after" in reason
    sse = await db_client.get(f"/api/v1/me/stream?token={token}&after={HUGE_ID}")
    assert_error(sse, 400, "invalid_after")
    sse = await db_client.get(
        f"/api/v1/me/stream?token={token}", headers={"Last-Event-ID": HUGE_ID}
    )
    assert_error(sse, 400, "invalid_after")


# -- dates (defect 1) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expires_at",
    [
        "9999-12-31T23:59:59-12:00",  # year 10000 in UTC: the create that stopped all creates
        "9999-12-31T23:00:00-01:00",
    ],
)
async def test_an_expiry_after_year_9999_in_utc_is_refused(
    db_app, db_client, user, expires_at
) -> None:
    response = await create(
        db_client, {"to": {"users": [user]}, "title": "t", "expires_at": expires_at}
    )
    error = assert_error(response, 422, "invalid")
    assert "expires_at" in error["message"]
    assert await inbox(db_client, db_app, user) == []


async def test_the_latest_expiry_is_accepted_and_shown_in_utc(db_app, db_client, user) -> None:
    response = await create(
        db_client,
        {"to": {"users": [user]}, "title": "t", "expires_at": "9999-12-31T23:59:59.999+00:00"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["expires_at"] == "9999-12-31T23:59:59.999Z"
    late = await create(
        db_client,
        {"to": {"users": [user]}, "title": "t", "expires_at": "9999-12-31T13:00:00-10:00"},
    )
    assert late.json()["expires_at"] == "9999-12-31T23:00:00.000Z"
    listed = await inbox(db_client, db_app, user)
    assert [item["expires_at"] for item in listed] == [
        "9999-12-31T23:00:00.000Z",
        "9999-12-31T23:59:59.999Z",
    ]


async def test_a_stored_expiry_beyond_any_date_still_lists(db_app, db_client, user) -> None:
    """Rows written before the rule (or by hand) render clamped, never fail the inbox."""
    store = db_app.state.tidings.service.store
    beyond = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-12)))
    new = NewNotification(Audience(users=(user,)), "t", "info", "stored before the rule")
    stored = await store.insert(
        [PendingCreate(NewNotification(**{**_fields(new), "expires_at": beyond}))],
        now_ms=int(time.time() * 1000),
    )
    [outcome] = stored.outcomes
    assert outcome.notification.to_public()["expires_at"] == "9999-12-31T23:59:59.999Z"
    from sqlalchemy import update

    from tidings.store.schema import notifications

    [second] = (await store.insert([PendingCreate(new)], now_ms=int(time.time() * 1000))).outcomes
    async with store.writer.begin() as conn:
        await conn.execute(
            update(notifications)
            .where(notifications.c.id == int(second.notification.id, 16))
            .values(expires_at=2**62)
        )
    listed = await inbox(db_client, db_app, user)
    assert [item["expires_at"] for item in listed] == ["9999-12-31T23:59:59.999Z"] * 2
    one = await db_client.get(
        f"/api/v1/me/notifications/{listed[0]['id']}", headers=user_headers(db_app, user)
    )
    assert one.status_code == 200


def _fields(new: NewNotification) -> dict:
    return {name: getattr(new, name) for name in new.__slots__}


# -- U+0000 (defect 7) -----------------------------------------------------------------------

NUL = "a\x00b"


@pytest.mark.parametrize(
    "fields",
    [
        {"title": NUL},
        {"body": NUL},
        {"url": NUL},
        {"actor": NUL},
        {"type": NUL},
        {"idempotency_key": NUL},
        {"to": {"users": [NUL]}},
        {"to": {"roles": [NUL]}},
    ],
    ids=["title", "body", "url", "actor", "type", "idempotency_key", "to.users", "to.roles"],
)
async def test_nul_in_stored_text_is_refused(db_app, db_client, user, fields) -> None:
    response = await create(db_client, {"to": {"users": [user]}, "title": "t", **fields})
    error = assert_error(response, 422, "invalid")
    assert "U+0000" in error["message"] or "pattern" in error["message"]
    assert await inbox(db_client, db_app, user) == []


async def test_nul_in_the_idempotency_key_header_is_refused(db_app, db_client, user) -> None:
    response = await db_client.post(
        "/api/v1/notifications",
        json={"to": {"users": [user]}, "title": "t"},
        headers=backend_headers() | {"Idempotency-Key": "k\x00"},
    )
    assert_error(response, 422, "invalid")


async def test_nul_in_data_is_json_and_kept(db_app, db_client, user) -> None:
    """``data`` is stored as JSON text, where U+0000 is the escape ``\\u0000``."""
    data = {"k\x00": "v\x00", "list": ["\x00"]}
    response = await create(db_client, {"to": {"users": [user]}, "title": "t", "data": data})
    assert response.status_code == 201, response.text
    [item] = await inbox(db_client, db_app, user)
    assert item["data"] == data


async def test_a_value_the_database_refuses_is_the_clients_error(db_app) -> None:
    """The store boundary: on PostgreSQL U+0000 in a text column is a DataError (SQLSTATE
    22021), translated to ValidationFailed (422), not Unavailable (503)."""
    store = db_app.state.tidings.service.store
    someone = Principal(user="nul\x00user")
    now = int(time.time() * 1000)
    if not store.is_postgres:  # SQLite keeps it
        assert await store.mark_all_read(someone, now_ms=now) is None
        return
    with pytest.raises(ValidationFailed):
        await store.mark_read(someone, [1], now_ms=now)
    with pytest.raises(ValidationFailed):
        await store.insert(
            [PendingCreate(NewNotification(Audience(users=("x",)), "t", "info", NUL))], now_ms=now
        )


# -- JSON values, types and bodies (defect 10) --------------------------------------------------

DEEP = "[" * 300 + "]" * 300
"""Deeper than orjson encodes (its limit is 254 levels)."""


@pytest.mark.parametrize(
    "data",
    [
        '{"n": 18446744073709551616}',  # 2^64
        '{"n": -9223372036854775809}',  # -2^63 - 1
        '{"n": NaN}',
        '{"n": Infinity}',
        '{"n": [-Infinity]}',
        '{"n": 1e999}',
        '{"n": ' + DEEP + "}",
        '{"s": "\\ud800"}',
    ],
    ids=["2^64", "-2^63-1", "NaN", "Infinity", "-Infinity", "1e999", "deep", "lone-surrogate"],
)
@pytest.mark.parametrize(
    ("path", "auth"),
    [
        ("/api/v1/notifications", True),
        ("/api/v1/dev/notifications", False),
        ("/api/v1/topics/logs/messages", True),
    ],
    ids=["create", "dev-create", "topic"],
)
async def test_data_that_is_not_plain_json_is_refused(
    db_app, db_client, user, data, path, auth
) -> None:
    """orjson cannot encode it (a 500 before), or would send something else (NaN as null)."""
    if "topics" in path:
        raw = '{"data": ' + data + "}"
    else:
        raw = '{"to": {"users": ["' + user + '"]}, "title": "t", "data": ' + data + "}"
    headers = {"Content-Type": "application/json"} | (backend_headers() if auth else {})
    response = await db_client.post(path, content=raw.encode(), headers=headers)
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["code"] in ("invalid", "malformed_json")
    assert await inbox(db_client, db_app, user) == []


async def test_the_largest_64_bit_integers_are_fine(db_app, db_client, user) -> None:
    data = {"max": 2**64 - 1, "min": -(2**63), "float": 1.5e300}
    response = await create(db_client, {"to": {"users": [user]}, "title": "t", "data": data})
    assert response.status_code == 201, response.text
    [item] = await inbox(db_client, db_app, user)
    assert item["data"] == data


@pytest.mark.parametrize("ttl", [True, 1.0, "60", [60]])
async def test_ttl_must_be_an_integer(db_app, db_client, user, ttl) -> None:
    response = await create(db_client, {"to": {"users": [user]}, "title": "t", "ttl": ttl})
    assert_error(response, 422, "invalid")


async def test_a_declared_huge_body_is_refused_before_reading(db_client) -> None:
    for path in ("/api/v1/notifications", "/api/v1/topics/t/messages"):
        response = await db_client.post(
            path,
            content=b"{}",
            headers=backend_headers() | {"Content-Length": str(10**12)},
        )
        error = assert_error(response, 413, "too_large")
        assert "max_request_bytes" in error["message"]
        assert response.headers["Connection"] == "close"


async def test_an_oversized_chunked_body_is_413_on_every_route(db_client) -> None:
    async def chunks():
        for _ in range(20):
            yield b"x" * 65536

    for path in ("/api/v1/notifications", "/api/v1/topics/t/messages"):
        response = await db_client.post(
            path, content=chunks(), headers=backend_headers() | {"Content-Type": "application/json"}
        )
        assert_error(response, 413, "too_large")


# -- over a real socket: what httpx cannot send -------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("input")).start()
    yield process
    process.stop()


def exchange(server: ServerProcess, request: bytes, timeout: float = 5) -> tuple[bytes, float]:
    """Send raw bytes; read until the server closes (or ``timeout``): (answer, seconds)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return answer, time.monotonic() - started


def status_and_error(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    return status, httpx.Response(status, content=body).json()["error"]


AUTH = f"Authorization: Bearer {SERVER_API_KEY}\r\n".encode()


@pytest.mark.parametrize("path", [b"/api/v1/notifications", b"/api/v1/topics/t/messages"])
def test_a_terabyte_content_length_is_answered_at_once(server, path) -> None:
    request = (
        b"POST "
        + path
        + b" HTTP/1.1\r\nHost: x\r\n"
        + AUTH
        + b"Content-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n{"
    )
    answer, seconds = exchange(server, request)
    status, error = status_and_error(answer)
    assert (status, error["code"]) == (413, "too_large")
    assert seconds < 2, "answered and closed without waiting for the body"


@pytest.mark.parametrize("path", [b"/api/v1/notifications", b"/api/v1/topics/t/messages"])
def test_an_oversized_chunked_body_is_413(server, path) -> None:
    chunk = b"10000\r\n" + b"a" * 0x10000 + b"\r\n"
    request = (
        b"POST "
        + path
        + b" HTTP/1.1\r\nHost: x\r\n"
        + AUTH
        + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunk * 5
        + b"0\r\n\r\n"
    )
    answer, seconds = exchange(server, request)
    status, error = status_and_error(answer)
    assert (status, error["code"]) == (413, "too_large")
    assert seconds < 2


@pytest.mark.parametrize(
    "header",
    [
        b"Authorization: Bearer \x01\x02\r\n",  # control characters
        b"Content-Length: abc\r\n",
        b"Bad Header: x\r\n",
    ],
)
def test_requests_the_server_cannot_parse_get_a_json_400(server, header) -> None:
    request = b"POST /api/v1/notifications HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n"
    answer, _ = exchange(server, request)
    status, error = status_and_error(answer)
    assert (status, error["code"]) == (400, "bad_request")


def test_the_protocol_override_still_matches_uvicorn() -> None:
    """``HttpProtocol`` overrides uvicorn's ``send_400_response``: fail if it is gone."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from tidings.web.httpserver import HttpProtocol

    assert callable(getattr(HttpToolsProtocol, "send_400_response", None))
    assert HttpProtocol.send_400_response is not HttpToolsProtocol.send_400_response


# -- methods (defect 13) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        # `read-all` is also a notification id to the GET and DELETE routes (404 there).
        ("/api/v1/me/notifications/read-all", "DELETE, GET, OPTIONS, POST"),
        ("/api/v1/notifications", "OPTIONS, POST"),
        ("/api/v1/me/unread-count", "GET, OPTIONS"),
    ],
)
async def test_allow_lists_every_method_of_the_path(client, path, allow) -> None:
    options = await client.options(path)
    assert options.status_code == 204
    assert options.headers["Allow"] == allow
    put = await client.put(path)
    assert_error(put, 405, "method_not_allowed")
    assert put.headers["Allow"] == allow
