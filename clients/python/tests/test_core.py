"""The request/response core as values in, values out: no sockets."""

from __future__ import annotations

import email.utils
import time

import pytest
from tidings_client import Conflict, ConnectionFailed, RateLimited, Retry, ServerError
from tidings_client._core import Failure, Operation, Request, Response, Sleep, exchange

RETRY = Retry(attempts=3, backoff=0.1)
ERROR = b'{"error": {"code": "idempotency_conflict", "message": "other body"}}'


def run(operation, outcomes):
    """Drive the exchange with canned outcomes; return (result, what it yielded)."""
    steps, seen = exchange(operation, RETRY), []
    step = next(steps)
    outcomes = iter(outcomes)
    try:
        while True:
            seen.append(step)
            step = steps.send(next(outcomes) if isinstance(step, Request) else None)
    except StopIteration as done:
        return done.value, seen


def op(safety="idempotent"):
    return Operation(Request("POST", "/x", "key", {"a": 1}, safety=safety), lambda body: body)


def ok(body=b'{"id": "1"}'):
    return Response(201, {}, body)


def test_success_is_parsed():
    assert run(op(), [ok()])[0] == {"id": "1"}


def test_retries_resend_the_identical_request_after_a_sleep():
    result, seen = run(op(), [Response(503, {}, b""), Failure(OSError("reset"), True), ok()])
    assert result == {"id": "1"}
    requests = [s for s in seen if isinstance(s, Request)]
    assert len(requests) == 3 and all(r == requests[0] for r in requests)
    assert [type(s) for s in seen] == [Request, Sleep, Request, Sleep, Request]


def test_attempts_are_bounded_and_the_last_error_raised():
    with pytest.raises(ServerError) as caught:
        run(op(), [Response(504, {}, b"gateway")] * 3)
    assert caught.value.status == 504 and caught.value.code == "http_504"


def test_retry_after_seconds_and_dates_are_honoured():
    _, seen = run(op(), [Response(429, {"retry-after": "2"}, b""), ok()])
    assert seen[1] == Sleep(2.0)
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    _, seen = run(op(), [Response(429, {"retry-after": when}, b""), ok()])
    assert 3 < seen[1].seconds <= 5


def test_a_long_retry_after_is_raised_with_it():
    with pytest.raises(RateLimited) as caught:
        run(op(), [Response(429, {"retry-after": "600"}, b"")])
    assert caught.value.retry_after == 600


def test_once_requests_are_repeated_only_when_nothing_happened():
    with pytest.raises(ConnectionFailed):
        run(op("once"), [Failure(OSError("reset"), True)])
    with pytest.raises(ServerError):
        run(op("once"), [Response(502, {}, b"")])
    assert run(op("once"), [Failure(OSError("refused"), False), Response(503, {}, b""), ok()])


def test_client_errors_are_not_retried_and_carry_the_body():
    with pytest.raises(Conflict) as caught:
        run(op(), [Response(409, {}, ERROR)])
    assert (caught.value.code, caught.value.message) == ("idempotency_conflict", "other body")
