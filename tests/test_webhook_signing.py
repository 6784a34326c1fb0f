"""The webhook wire format and retry policy: pure values in, values out."""

from __future__ import annotations

import hashlib
import hmac
import random
import time

import orjson

from tidings.webhooks import signing
from tidings.webhooks.retry import RetryPolicy, Verdict, delay, judge_status

SECRET = "whsec-test"


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    raw = signing.body("evt_1", "notification.read", "2026-01-01T00:00:00.000Z", {"user": "a"})
    header = signing.signature(SECRET, raw, 1_700_000_000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + raw, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert orjson.loads(raw) == {
        "id": "evt_1",
        "type": "notification.read",
        "created_at": "2026-01-01T00:00:00.000Z",
        "data": {"user": "a"},
    }


def test_verify_accepts_the_signed_body_and_nothing_else() -> None:
    raw = b'{"id":"evt_1"}'
    header = signing.signature(SECRET, raw, 1000)
    assert signing.verify(SECRET, header, raw, now=1000)
    assert signing.verify(SECRET, header, raw, now=1000 + signing.TOLERANCE)
    assert not signing.verify(SECRET, header, raw + b" ", now=1000)  # body changed
    assert not signing.verify("other", header, raw, now=1000)  # wrong secret
    assert not signing.verify(SECRET, header, raw, now=1001 + signing.TOLERANCE)  # replayed late
    assert not signing.verify(SECRET, header.replace("t=1000", "t=1001"), raw, now=1000)
    assert not signing.verify(SECRET, "garbage", raw, now=1000)
    assert not signing.verify(SECRET, "t=abc,v1=00", raw, now=1000)


def test_2xx_is_delivered_5xx_408_429_retried_other_answers_given_up() -> None:
    assert [judge_status(s) for s in (200, 202, 299)] == [Verdict.DELIVERED] * 3
    assert [judge_status(s) for s in (500, 502, 503, 408, 429)] == [Verdict.RETRY] * 5
    assert [judge_status(s) for s in (301, 400, 401, 404, 410)] == [Verdict.GIVE_UP] * 5


def test_backoff_starts_at_a_second_and_doubles_with_jitter_up_to_a_cap() -> None:
    rng = random.Random(7)
    for attempts, base in ((1, 1), (2, 2), (3, 4), (4, 8), (30, 300)):
        for _ in range(50):
            assert 0.8 * base <= delay(attempts, rng) <= 1.2 * base


def test_a_retry_is_given_up_after_max_attempts_or_max_age() -> None:
    policy = RetryPolicy(max_attempts=3, max_age_ms=60_000)
    assert policy.next_due(attempts=1, created_at_ms=0, now_ms=0) is not None
    assert policy.next_due(attempts=3, created_at_ms=0, now_ms=0) is None
    assert policy.next_due(attempts=2, created_at_ms=0, now_ms=59_900) is None  # too old


def test_the_readme_receiver_verifies_what_tidings_signs(monkeypatch) -> None:
    import importlib.util
    from pathlib import Path

    monkeypatch.setenv("TIDINGS_WEBHOOK_SECRET", SECRET)
    path = Path(__file__).parent.parent / "examples" / "webhook_receiver.py"
    spec = importlib.util.spec_from_file_location("webhook_receiver_example", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    raw = signing.body("evt_2", "notification.action", "2026-01-01T00:00:00.000Z", {})
    now = int(time.time())
    header = signing.signature(SECRET, raw, now)
    assert example.verify(SECRET, header, raw)
    assert not example.verify(SECRET, header, raw[:-1])
    assert not example.verify(SECRET, signing.signature(SECRET, raw, now - 400), raw)
    assert not example.verify(SECRET, "nonsense", raw)
