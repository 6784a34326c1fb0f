"""The request/response core, with no I/O: what to send, when to retry, what came back.

An :class:`Operation` is a request plus the function that reads its answer. The
:func:`exchange` generator runs one operation: it yields :class:`Request` (the transport
answers with a :class:`Response` or a :class:`Failure`) and :class:`Sleep` (the transport
waits), and returns the parsed result or raises a :class:`~tidings_client.TidingsError`.
The sync and async clients are two thin pumps around it (see ``_transport.py``).
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from tidings_client import errors

T = TypeVar("T")

Safety = Literal["idempotent", "once"]
"""``idempotent``: repeating the request cannot store twice (reads, creates with an
idempotency key), so any failure may be retried. ``once``: retried only when the server
certainly did nothing (the connection was never made, 429, 503)."""

RETRY_STATUSES = frozenset({429, 502, 503, 504})
REFUSED_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    auth: str
    json: Any = None
    params: Mapping[str, Any] = field(default_factory=dict)
    safety: Safety = "idempotent"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.auth}", "Accept": "application/json"}


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    content: bytes


@dataclass(frozen=True)
class Failure:
    """No response. ``sent`` is False when the request certainly never left (connect
    refused or timed out), so even a ``once`` request may be repeated."""

    error: Exception
    sent: bool


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Operation(Generic[T]):
    request: Request
    parse: Callable[[Any], T]
    token_auth: bool = False
    """Authenticated with a token this SDK minted: a 401 hints at the secret."""


@dataclass(frozen=True)
class Retry:
    """Bounded retries with exponential backoff and jitter, honouring ``Retry-After``."""

    attempts: int = 4
    backoff: float = 0.25
    max_delay: float = 8.0
    max_retry_after: float = 30.0
    """A ``Retry-After`` longer than this is not waited for: the error is raised."""

    def delay(self, attempt: int, outcome: Response | Failure, safety: Safety) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to stop."""
        if attempt + 1 >= self.attempts or not _retryable(outcome, safety):
            return None
        backoff = min(self.max_delay, self.backoff * 2.0**attempt) * (0.5 + random.random() / 2)
        if isinstance(outcome, Response) and outcome.status == 429:
            after = retry_after(outcome.headers)
            if after is not None:
                return after if after <= self.max_retry_after else None
        return backoff


NO_RETRY = Retry(attempts=1)

Exchange = Generator[Request | Sleep, Response | Failure | None, T]


def exchange(operation: Operation[T], retry: Retry) -> Exchange[T]:
    """Run one operation: send, retry while the policy allows, parse or raise."""
    attempt = 0
    while True:
        outcome = yield operation.request
        assert outcome is not None, "the transport answers a Request"
        if isinstance(outcome, Response) and outcome.status < 400:
            return operation.parse(_json(outcome))
        delay = retry.delay(attempt, outcome, operation.request.safety)
        if delay is None:
            raise _error(outcome, operation, attempt + 1)
        yield Sleep(delay)
        attempt += 1


def _retryable(outcome: Response | Failure, safety: Safety) -> bool:
    if isinstance(outcome, Failure):
        return safety == "idempotent" or not outcome.sent
    allowed = RETRY_STATUSES if safety == "idempotent" else REFUSED_STATUSES
    return outcome.status in allowed


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), if present and readable."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _json(response: Response) -> Any:
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        raise errors.ServerError(
            f"the server answered {response.status} with a body that is not JSON",
            status=response.status,
            code="invalid_response",
        ) from None


def _error(outcome: Response | Failure, operation: Operation[Any], tries: int) -> Exception:
    if isinstance(outcome, Failure):
        error = errors.ConnectionFailed(f"no answer after {tries} attempt(s): {outcome.error}")
        error.__cause__ = outcome.error
        return error
    return error_from_response(outcome, token_auth=operation.token_auth)


def error_from_response(response: Response, *, token_auth: bool = False) -> errors.TidingsError:
    """The contract's error body ``{"error": {"code", "message"}}`` as an exception."""
    code, message = _error_body(response)
    if response.status == 401 and token_auth:
        message += " (the token was minted with this client's jwt_secret: is it the server's?)"
    cls = errors.for_status(response.status)
    if cls is errors.RateLimited:
        return errors.RateLimited(
            message, code=code, status=429, retry_after=retry_after(response.headers)
        )
    return cls(message, code=code, status=response.status)


def _error_body(response: Response) -> tuple[str, str]:
    try:
        error = json.loads(response.content)["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        text = response.content.decode("utf-8", "replace").strip()[:200]
        return f"http_{response.status}", text or f"HTTP {response.status}"
