"""Retries through a fault-injecting proxy in front of a real server: a retried create
is stored once, whatever happened to the first attempt's answer."""

from __future__ import annotations

import time

import pytest
from faultproxy import FaultProxy
from tidings_client import (
    AsyncTidings,
    ConnectionFailed,
    RateLimited,
    Retry,
    ServerError,
    Tidings,
)

FAST = Retry(attempts=4, backoff=0.01)


@pytest.fixture
def proxy(server):
    with FaultProxy(server.port) as proxy:
        yield proxy


@pytest.fixture
def tidings(proxy, credentials):
    with Tidings(proxy.url, retry=FAST, **credentials) as client:
        yield client


@pytest.mark.parametrize("fault", ["drop", "bad_gateway", "unavailable"])
def test_a_retried_create_is_stored_once(tidings, proxy, user, fault):
    proxy.inject(fault, fault)
    created = tidings.notify(to={"users": [user]}, title="exactly once")
    assert proxy.connections == 3
    page = tidings.list(user)
    assert [item["id"] for item in page["items"]] == [created["id"]]


async def test_the_async_client_retries_the_same_way(proxy, credentials, user):
    proxy.inject("drop")
    async with AsyncTidings(proxy.url, retry=FAST, **credentials) as tidings:
        created = await tidings.notify(to={"users": [user]}, title="async once")
        page = await tidings.list(user)
    assert [item["id"] for item in page["items"]] == [created["id"]]


def test_429_waits_for_retry_after(tidings, proxy, user):
    proxy.inject("busy")
    started = time.monotonic()
    tidings.notify(to={"users": [user]}, title="after a wait")
    assert time.monotonic() - started >= 0.9
    assert tidings.unread_count(user) == 1


def test_attempts_are_bounded(proxy, credentials, user):
    proxy.inject("bad_gateway", "bad_gateway", "bad_gateway")
    with Tidings(proxy.url, retry=Retry(attempts=3, backoff=0.01), **credentials) as tidings:
        with pytest.raises(ServerError) as caught:
            tidings.notify(to={"users": [user]}, title="never answered")
        assert caught.value.status == 502
        assert tidings.unread_count(user) == 1  # stored once by the first attempt


def test_a_retry_after_longer_than_allowed_is_raised(proxy, credentials, user):
    proxy.retry_after = "120"
    proxy.inject("busy")
    tidings = Tidings(proxy.url, retry=FAST, **credentials)
    with tidings, pytest.raises(RateLimited) as caught:
        tidings.notify(to={"users": [user]}, title="x")
    assert caught.value.retry_after == 120 and caught.value.status == 429


def test_publish_is_not_repeated_after_it_may_have_arrived(tidings, proxy):
    proxy.inject("drop")
    with pytest.raises(ConnectionFailed):
        tidings.publish("room.1", {"x": 1})
    assert proxy.connections == 1


def test_publish_is_repeated_when_the_server_refused(tidings, proxy):
    proxy.inject("unavailable")
    assert tidings.publish("room.1", {"x": 1})["published"] is True


def test_nothing_listening_is_a_connection_failure(credentials, user):
    tidings = Tidings("http://127.0.0.1:9", retry=FAST, **credentials)
    with tidings, pytest.raises(ConnectionFailed) as caught:
        tidings.notify(to={"users": [user]}, title="x")
    assert caught.value.status is None and "4 attempt" in caught.value.message
