"""Create rate limits per API key: one contract for the memory and the Redis buckets,
and the 429 the create routes answer once a key's budget is spent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from realtime_helpers import shared_redis_url
from support import API_KEY, backend_headers, make_settings

from tidings.ratelimit import (
    CreateLimiter,
    MemoryCreateLimiter,
    RedisCreateLimiter,
    create_limiter,
)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make_limiter(request: pytest.FixtureRequest) -> AsyncIterator:
    made: list[CreateLimiter] = []
    prefix = f"tidings-test-{uuid.uuid4().hex[:8]}:"

    def make(rate: float, burst: int) -> CreateLimiter:
        if request.param == "memory":
            limiter: CreateLimiter = MemoryCreateLimiter(rate=rate, burst=burst)
        else:
            limiter = RedisCreateLimiter(shared_redis_url(), prefix=prefix, rate=rate, burst=burst)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


async def test_a_key_spends_its_burst_then_waits_for_the_rate(make_limiter) -> None:
    limiter = make_limiter(rate=2.0, burst=3)
    assert [await limiter.take("key-a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await limiter.take("key-a")
    assert 0.0 < wait <= 0.5  # one token comes back every half second


async def test_keys_have_budgets_of_their_own(make_limiter) -> None:
    limiter = make_limiter(rate=1.0, burst=1)
    assert await limiter.take("key-a") == 0.0
    assert await limiter.take("key-a") > 0
    assert await limiter.take("key-b") == 0.0


async def test_tokens_come_back_at_the_rate(make_limiter) -> None:
    limiter = make_limiter(rate=20.0, burst=1)
    assert await limiter.take("key-a") == 0.0
    assert await limiter.take("key-a") > 0
    await asyncio.sleep(0.1)
    assert await limiter.take("key-a") == 0.0


@pytest.mark.redis
async def test_processes_on_one_redis_share_a_budget() -> None:
    prefix = f"tidings-test-{uuid.uuid4().hex[:8]}:"
    one, two = (
        RedisCreateLimiter(shared_redis_url(), prefix=prefix, rate=0.5, burst=2) for _ in range(2)
    )
    try:
        assert await one.take("key") == 0.0
        assert await two.take("key") == 0.0
        assert await one.take("key") > 0
        assert await two.take("key") > 0
    finally:
        await one.close()
        await two.close()


async def test_an_unreachable_redis_lets_creates_through() -> None:
    limiter = RedisCreateLimiter("redis://127.0.0.1:1/0", prefix="x:", rate=1.0, burst=1)
    try:
        assert [await limiter.take("key") for _ in range(3)] == [0.0, 0.0, 0.0]
    finally:
        await limiter.close()


def test_rate_zero_turns_limits_off() -> None:
    assert create_limiter("memory://", prefix="", rate=0, burst=10) is None
    assert isinstance(create_limiter("memory://", prefix="", rate=1, burst=1), MemoryCreateLimiter)


# -- the routes ------------------------------------------------------------------------------

NOTE = {"to": {"users": ["alice"]}, "title": "hi"}


@pytest.fixture
async def limited(tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    from tidings.web import create_app

    application = create_app(make_settings(tmp_path, create_rate=0.5, create_burst=2))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def test_creates_over_the_budget_get_429_with_retry_after(limited) -> None:
    for _ in range(2):
        assert (
            await limited.post("/api/v1/notifications", json=NOTE, headers=backend_headers())
        ).status_code == 201
    refused = await limited.post("/api/v1/notifications", json=NOTE, headers=backend_headers())
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 2
    # Another key has a budget of its own.
    other = await limited.post(
        "/api/v1/notifications", json=NOTE, headers=backend_headers("second-key")
    )
    assert other.status_code == 201


async def test_topic_messages_draw_from_the_same_budget(limited) -> None:
    headers = backend_headers()
    assert (
        await limited.post("/api/v1/notifications", json=NOTE, headers=headers)
    ).status_code == 201
    published = await limited.post(
        "/api/v1/topics/news/messages", json={"data": {}}, headers=headers
    )
    assert published.status_code == 202
    refused = await limited.post("/api/v1/topics/news/messages", json={"data": {}}, headers=headers)
    assert refused.status_code == 429
    assert "Retry-After" in refused.headers


async def test_bad_keys_are_401_before_any_budget_is_spent(limited) -> None:
    for _ in range(5):
        answer = await limited.post(
            "/api/v1/notifications", json=NOTE, headers=backend_headers("nope")
        )
        assert answer.status_code == 401
    ok = await limited.post("/api/v1/notifications", json=NOTE, headers=backend_headers(API_KEY))
    assert ok.status_code == 201
