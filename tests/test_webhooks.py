"""Webhooks end to end, in process, against a real HTTP receiver on loopback: events
arrive signed, failures are retried with backoff, hangs never hold anything up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from realtime_helpers import wait_until
from support import backend_headers, make_settings, user_headers
from webhook_receiver import HANG, Receiver

from tidings.settings import Settings
from tidings.webhooks.dispatcher import Webhooks

SECRET = "whsec-test-secret"


@asynccontextmanager
async def running(
    tmp_path, *urls: str, **overrides: Any
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """An app with these webhook URLs, and an HTTP client for it."""
    from tidings.web import create_app

    settings = make_settings(tmp_path, webhook_urls=list(urls), webhook_secret=SECRET, **overrides)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield application, client


async def create(client: httpx.AsyncClient, to: dict, title: str = "Hi") -> dict:
    response = await client.post(
        "/api/v1/notifications", json={"to": to, "title": title}, headers=backend_headers()
    )
    assert response.status_code == 201, response.text
    return response.json()


def queue_of(application) -> Webhooks:
    return application.state.tidings.webhooks


async def test_created_and_read_events_arrive_signed(tmp_path) -> None:
    with Receiver() as receiver:
        async with running(tmp_path, receiver.url) as (application, client):
            made = await create(client, {"users": ["alice"], "roles": ["ops"]}, "Deploy done")
            await wait_until(lambda: bool(receiver.accepted("notification.created")), 10)
            alice = user_headers(application, "alice")
            await client.post(f"/api/v1/me/notifications/{made['id']}/read", headers=alice)
            await client.post("/api/v1/me/notifications/read-all", headers=alice)
            await wait_until(lambda: len(receiver.accepted("notification.read")) == 2, 10)
    [delivery] = [d for d in receiver.deliveries if d.body["type"] == "notification.created"]
    assert delivery.signed_with(SECRET)
    assert not delivery.signed_with("another secret")
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["tidings-event"] == "notification.created"
    event = delivery.body
    assert event["id"].startswith("evt_") and event["created_at"].endswith("Z")
    assert event["data"]["notification"]["id"] == made["id"]
    assert event["data"]["notification"]["title"] == "Deploy done"
    assert event["data"]["to"] == {"users": ["alice"], "roles": ["ops"], "all": False}
    # Two events, in either order (deliveries are concurrent; the README says so).
    reads = [event["data"] for event in receiver.accepted("notification.read")]
    assert sorted(reads, key=lambda data: "all" in data) == [
        {"user": "alice", "ids": [made["id"]]},
        {"user": "alice", "all": True, "through": made["id"]},
    ]


async def test_every_url_gets_every_event(tmp_path) -> None:
    with Receiver() as first, Receiver() as second:
        async with running(tmp_path, first.url, second.url) as (_, client):
            await create(client, {"all": True})
            await wait_until(lambda: bool(first.accepted() and second.accepted()), 10)
    assert first.accepted()[0]["id"] == second.accepted()[0]["id"]


async def test_a_failing_receiver_gets_the_event_again_after_a_backoff(tmp_path) -> None:
    with Receiver(503) as receiver:
        async with running(tmp_path, receiver.url) as (application, client):
            started = time.monotonic()
            await create(client, {"users": ["bob"]})
            await wait_until(lambda: bool(receiver.accepted()), 15, "delivery after a 503")
            took = time.monotonic() - started
            queue = queue_of(application).queue

            async def settled() -> bool:
                return (await queue.counts())["pending"] == 0

            await wait_until(settled, 5, "the delivered row deleted")
    assert [d.status for d in receiver.deliveries] == [503, 200]
    assert len({d.body["id"] for d in receiver.deliveries}) == 1  # the same event each time
    assert 0.8 <= took < 4  # retried after ~1 s


async def test_a_hanging_receiver_delays_nobody_and_is_retried(tmp_path) -> None:
    with Receiver(HANG, hang_seconds=3) as receiver:
        async with running(tmp_path, receiver.url, webhook_timeout=0.5) as (_, client):
            await create(client, {"users": ["carol"]}, "first")
            await wait_until(lambda: bool(receiver.deliveries), 10)  # the first send now hangs
            started = time.monotonic()
            for n in range(20):
                await create(client, {"users": ["carol"]}, f"more {n}")
            # Waiting for the receiver would cost each create the 0.5 s timeout at least.
            assert time.monotonic() - started < 20 * 0.5 / 2
            await wait_until(lambda: len(receiver.accepted()) == 21, 15, "all 21 delivered")
    assert receiver.deliveries[0].status == HANG
    titles = [b["data"]["notification"]["title"] for b in receiver.accepted()]
    assert sorted(titles) == sorted(["first", *(f"more {n}" for n in range(20))])


async def test_a_refusing_receiver_is_given_up_at_once_and_kept_for_operators(
    tmp_path,
) -> None:
    with Receiver(401) as receiver:
        async with running(tmp_path, receiver.url) as (application, client):
            await create(client, {"users": ["dan"]})
            queue = queue_of(application).queue
            await wait_until(lambda: bool(receiver.deliveries), 10)

            async def failed() -> bool:
                return (await queue.counts())["failed"] == 1

            await wait_until(failed, 10)
            [row] = await queue.failed()
    assert row["last_error"] == "HTTP 401" and row["attempts"] == 1
    assert len(receiver.deliveries) == 1


async def test_retries_stop_after_max_attempts(tmp_path) -> None:
    with Receiver() as receiver:
        receiver.default = 500
        async with running(tmp_path, receiver.url, webhook_max_attempts=2) as (app, client):
            await create(client, {"users": ["erin"]})
            queue = queue_of(app).queue

            async def failed() -> bool:
                return (await queue.counts()) == {"pending": 0, "failed": 1}

            await wait_until(failed, 12)
    assert [d.status for d in receiver.deliveries] == [500, 500]


async def test_an_unreachable_receiver_is_retried(tmp_path) -> None:
    with Receiver() as receiver:
        url, port = receiver.url, receiver.port
    # Nothing listens on that port now: connection refused, retried, then it comes back.
    async with running(tmp_path, url) as (_, client):
        await create(client, {"users": ["fay"]})
        await asyncio.sleep(0.3)  # the first attempt is refused
        with Receiver(port=port) as back:
            await wait_until(lambda: bool(back.accepted()), 12, "delivery once the receiver is up")


async def test_readiness_names_the_webhook_workers(tmp_path) -> None:
    with Receiver() as receiver:
        async with running(tmp_path, receiver.url) as (_, client):
            workers = (await client.get("/readyz")).json()["workers"]
    assert workers["webhook-flusher"] is True and workers["webhook-sender"] is True


async def test_with_no_url_nothing_is_queued_and_nothing_runs(tmp_path) -> None:
    from tidings.web import create_app

    application = create_app(make_settings(tmp_path))
    async with application.router.lifespan_context(application):
        webhooks = queue_of(application)
        assert not webhooks.enabled and not webhooks.alive()
        webhooks.emit("notification.created", {"x": 1})
        assert await webhooks.queue.counts() == {"pending": 0, "failed": 0}


@pytest.mark.parametrize(
    "urls",
    ["ftp://example.com/hook", "not a url", "http://", "https://a.test/x,https://a.test/x"],
)
def test_invalid_webhook_urls_are_refused_with_a_clear_message(tmp_path, urls: str) -> None:
    with pytest.raises(ValueError, match="webhook_urls"):
        Settings(webhook_urls=urls, webhook_secret="s")


def test_serve_refuses_invalid_webhook_urls_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    from tidings.cli import main

    monkeypatch.setenv("TIDINGS_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("TIDINGS_WEBHOOK_URLS", "https://ok.test/hook,ftp://files.test/x")
    monkeypatch.setenv("TIDINGS_WEBHOOK_SECRET", "s")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "TIDINGS_WEBHOOK_URLS: 'ftp://files.test/x' is not an http:// or https://" in err


def test_webhook_urls_need_a_secret(tmp_path) -> None:
    with pytest.raises(ValueError, match="TIDINGS_WEBHOOK_SECRET"):
        Settings(webhook_urls="https://a.test/hook")
    ok = Settings(webhook_urls=" https://a.test/hook , http://127.0.0.1:9/x ", webhook_secret="s")
    assert ok.webhook_urls == ["https://a.test/hook", "http://127.0.0.1:9/x"]


def test_rows_carry_a_unique_event_id_and_the_api_time_format(tmp_path) -> None:
    from tidings.models import isoformat, utc_from_ms
    from tidings.store import SqlStore
    from tidings.store.webhooks import WebhookQueue
    from tidings.webhooks import WebhookConfig
    from tidings.webhooks.signing import body

    moments = iter([1_700_000_000.25, 1_700_000_000.5, 1_700_000_001.0])  # exact in binary
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path}/t.db", max_age_ms=1, max_items=1)
    config = WebhookConfig(urls=("http://a.test/1", "http://b.test/2"), secret="s")
    webhooks = Webhooks(WebhookQueue(store), config, clock=lambda: next(moments))
    made = [webhooks.rows("t", [{"n": n}]) for n in range(3)]
    for rows, ms in zip(
        made, (1_700_000_000_250, 1_700_000_000_500, 1_700_000_001_000), strict=True
    ):
        assert [r["url"] for r in rows] == list(config.urls)
        event = orjson.loads(rows[0]["body"])
        assert event["created_at"] == isoformat(utc_from_ms(ms))
        assert (
            rows[0]["body"]
            == rows[1]["body"]
            == body(event["id"], "t", event["created_at"], event["data"]).decode()
        )
    assert len({orjson.loads(rows[0]["body"])["id"] for rows in made}) == 3
